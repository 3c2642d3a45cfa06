"""experiments.embedding end to end at tiny size: the default on synthetic_faces, loss variants on digits."""

import importlib
import json
import os

import numpy as np
import pytest

from cnnjax import embedding
from cnnjax.data import sources
from experiments import embedding as experiment
from experiments.configs import embedding_default

CONFIGS = ("default", "batch_all", "batch_hard", "random", "binary", "digits", "lfw")
REPORTED = ("verification_accuracy", "auc", "val_at_far_1e-3", "recognition_top1",
            "recognition_false_accept_rate", "recognition_strict_top1", "recognition_strict_false_accept_rate")


def _tiny(config, data_dir):
  config.data_dir = str(data_dir)
  config.num_steps = 3
  config.optimizer.warmup_steps = 0  # within the 3 steps; the small rate keeps them near the config's warm-up
  config.optimizer.learning_rate = 5e-5
  config.model_kwargs.widths = (4, 8)
  config.embedding_dim = 8
  config.p, config.k, config.batch_size = 4, 2, 8
  config.val_pairs, config.test_pairs, config.n_folds = 40, 60, 3
  config.eval_every = config.checkpoint_every = 2
  config.log_every = 1
  config.eval_batch_size = 200
  return config


def _check_results(results, workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    written = json.load(f)
  for key in REPORTED:
    assert 0.0 <= results[key] <= 1.0 and written[key] == pytest.approx(results[key])
  for plot in ("embeddings_2d", "roc", "distances"):
    assert os.path.getsize(os.path.join(workdir, "plots", f"{plot}.png")) > 1000
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert any("val_auc" in r for r in rows) and any("train_loss" in r for r in rows)


def test_default_run_on_synthetic_faces(tmp_path):
  config = _tiny(embedding_default.get_config(), tmp_path / "data")
  results = experiment.run(config, str(tmp_path / "work"))
  _check_results(results, str(tmp_path / "work"))
  assert results["loss"] == "semihard" and results["recognition_enrolled"] == 50
  assert results["strict_val_threshold"] <= results["val_threshold"]
  # The generated dataset: 400 / 100 / 100 identities, 12 images each, no identity in two splits.
  ids = {}
  for split, count in (("train", 400), ("validation", 100), ("test", 100)):
    source = sources.load("synthetic_faces", split, data_dir=str(tmp_path / "data"))
    labels = np.array([source[i]["label"] for i in range(len(source))])
    assert source[0]["image"].shape == (48, 48, 3)
    ids[split] = set(np.unique(labels).tolist())
    assert len(ids[split]) == count and np.all(np.bincount(labels)[labels] == 12)
  assert not (ids["train"] & ids["validation"]) and not (ids["train"] & ids["test"])
  assert not (ids["validation"] & ids["test"])


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("digits")


@pytest.mark.parametrize("name", ["random", "binary"])
def test_variants_on_digits(tmp_path, digits_dir, name):
  config = importlib.import_module(f"experiments.configs.embedding_{name}").get_config()
  config = _tiny(config, digits_dir)
  config.dataset = "digits"
  if name == "random":
    for part, split, labels in (("train", "train", (0, 1, 2, 3, 4, 5)), ("val", "train", (6, 7, 8, 9)),
                                ("test", "test", (6, 7, 8, 9))):
      config[f"{part}_split"], config[f"{part}_labels"] = split, labels
  else:
    # The pairs protocol with digits as people: the file names 7, 8 and 9, so training keeps 0-6.
    lines = ["2 3"] + 2 * ["7 1 2", "8 3 4", "9 5 6", "7 1 8 2", "8 3 9 4", "9 5 7 6"]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    config.pairs_file, config.n_folds = str(tmp_path / "pairs.txt"), 2
    config.train_split = "train"
    config.val_split = config.test_split = "test"
  results = experiment.run(config, str(tmp_path / "work"))
  _check_results(results, str(tmp_path / "work"))
  assert results["loss"] == name
  if name == "binary":
    assert 0.0 <= results["classifier_auc"] <= 1.0
    assert results["recognition_enrolled"] == 2  # half of the three people the file names


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_are_consistent(name):
  config = importlib.import_module(f"experiments.configs.embedding_{name}").get_config()
  assert config.loss.name in embedding.LOSSES
  assert config.batch_size == config.p * config.k
  assert (config.loss.name == "binary") == bool(config.model_kwargs.get("pair_head"))


def test_bad_config_raises_before_training(tmp_path, digits_dir):
  config = embedding_default.get_config()
  config.batch_size = 63
  with pytest.raises(ValueError, match=r"config.batch_size=63: expected p \* k"):
    experiment.run(config, str(tmp_path))
  config = _tiny(importlib.import_module("experiments.configs.embedding_digits").get_config(), digits_dir)
  config.val_labels = (5, 6)
  with pytest.raises(ValueError, match="identities .* are in training and in validation or test"):
    experiment.run(config, str(tmp_path))
  assert not os.listdir(tmp_path)
