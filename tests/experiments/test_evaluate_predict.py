"""experiments.evaluate and experiments.predict on runs trained here at tiny size (one run per experiment)."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from cnnjax import models, train
from cnnjax.data import host_input, prepare, sources
from cnnjax.data.builders import shapes
from experiments import classification, cli, detection, evaluate, predict
from experiments import embedding as embedding_experiment
from experiments.configs import detection_yolo, embedding_default, lenet5_digits, style_default
from experiments.detection import train_yolo
from experiments.inference import RunError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
  """A LeNet-5 run on the digits: 20 steps, evaluated and checkpointed at steps 10 and 20."""
  config = lenet5_digits.get_config()
  config.num_steps, config.eval_every, config.checkpoint_every, config.log_every = 20, 10, 10, 10
  config.tensorboard = False
  config.optimizer.warmup_steps = 0
  workdir = str(tmp_path_factory.mktemp("classifier"))
  results = classification.run(config, workdir)
  return workdir, config, results


def _pngs(directory, source, count, channels):
  """The first `count` images of `source` as PNG files; their paths and labels."""
  paths = []
  for i in range(count):
    image = np.asarray(source[i]["image"])
    path = os.path.join(directory, f"image{i}.png")
    Image.fromarray(image[..., 0] if channels == 1 else image).save(path)
    paths.append(path)
  return paths


def test_evaluate_gives_what_the_run_reported(classifier, tmp_path):
  workdir, _, results = classifier
  out = evaluate.evaluate(workdir)
  assert out["checkpoint"] == 20 and out["split"] == "test" and out["experiment"] == "classification"
  assert out["metrics"]["accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-6)
  assert out["metrics"]["loss"] == pytest.approx(results["test_loss"], rel=1e-5)
  written = json.load(open(os.path.join(workdir, "evaluate-test-20.json")))
  assert written["metrics"] == out["metrics"]
  # The best checkpoint by the run's best_metric: the one whose logged test_accuracy is highest.
  logged = {r["step"]: r for r in train.read_metrics(workdir) if "test_accuracy" in r}
  best = max(logged, key=lambda s: (logged[s]["test_accuracy"], s))
  out = evaluate.evaluate(workdir, checkpoint="best", split="test", output=str(tmp_path / "best.json"))
  assert out["checkpoint"] == best
  assert out["metrics"]["accuracy"] == pytest.approx(logged[best]["test_accuracy"], abs=1e-6)
  assert json.load(open(tmp_path / "best.json"))["checkpoint"] == best


def test_evaluate_refuses_what_it_cannot_evaluate(classifier, tmp_path):
  workdir, _, _ = classifier
  with pytest.raises(RunError, match=f"--workdir={tmp_path}/nowhere: no such directory"):
    evaluate.evaluate(str(tmp_path / "nowhere"))
  with pytest.raises(RunError, match="holds no config.json"):
    evaluate.evaluate(str(tmp_path))
  with pytest.raises(RunError, match=r"--split='validation': dataset 'digits' has no such split; its splits: "
                                     r"\['test', 'train'\]"):
    evaluate.evaluate(workdir, split="validation")
  with pytest.raises(RunError, match=r"--checkpoint=7: no checkpoint of that step .*steps saved: \[10, 20\]"):
    evaluate.evaluate(workdir, checkpoint="7")
  with pytest.raises(RunError, match="expected 'latest', 'best' or a step number"):
    evaluate.evaluate(workdir, checkpoint="newest")
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / "config.json").write_text(open(os.path.join(workdir, "config.json")).read())
  with pytest.raises(RunError, match="no checkpoint under"):
    evaluate.evaluate(str(tmp_path / "empty"))
  # From the command line: one line on stderr, status 1, no traceback.
  out = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--workdir={workdir}", "--split=nosuch"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert out.returncode == 1 and "Traceback" not in out.stderr
  assert "FATAL --split='nosuch': dataset 'digits' has no such split" in out.stderr


def test_predict_gives_the_models_probabilities_on_image_files(classifier, tmp_path):
  workdir, config, _ = classifier
  source = classification.load_split(config, "test")
  paths = _pngs(tmp_path, source, 8, channels=1)
  out = predict.predict(workdir, paths, top_k=3)
  probs = np.array([entry["probabilities"] for entry in out["images"]])
  # The same images through the checkpointed model, prepared as the run prepares its test images.
  images = np.stack([source[i]["image"] for i in range(8)])
  mean, std = host_input.sample_channel_stats(classification.load_split(config, "train"))
  logits = models.create("lenet5", num_classes=10).apply(
      train.load_variables(workdir), prepare.make_preprocess(mean, std)({"image": images})["image"])
  np.testing.assert_allclose(probs, jax.nn.softmax(logits), atol=1e-5)
  labels = np.array([source[i]["label"] for i in range(8)])
  top1 = np.array([entry["top_k"][0]["class"] for entry in out["images"]])
  assert np.mean(top1 == labels) >= 0.6
  first = out["images"][0]
  assert first["path"] == paths[0] and len(first["top_k"]) == 3 and first["top_k"][0]["name"] == str(top1[0])
  assert json.load(open(os.path.join(workdir, "predict-20.json")))["images"][0]["top_k"] == first["top_k"]


def test_predict_names_a_missing_or_broken_image(classifier, tmp_path):
  workdir, _, _ = classifier
  with pytest.raises(RunError, match=f"{tmp_path}/missing.png: no such image file"):
    predict.predict(workdir, [str(tmp_path / "missing.png")])
  (tmp_path / "text.png").write_text("not an image")
  with pytest.raises(RunError, match=f"{tmp_path}/text.png: not an image file"):
    predict.predict(workdir, [str(tmp_path / "text.png")])
  with pytest.raises(RunError, match="at least one image"):
    predict.predict(workdir, [])


def test_yolo_evaluate_and_predict(tmp_path):
  config = detection_yolo.get_config()
  config.update_from_flattened_dict(dict(
      num_steps=2, batch_size=4, eval_batch_size=4, eval_limit=4, log_every=1, eval_every=0, checkpoint_every=0,
      num_plot_images=0, max_objects=4, **{"optimizer.warmup_steps": 0}))
  config.model_kwargs.update(dict(widths=(4, 8), deep=False))
  config.tensorboard = False  # a field of every training config, absent from this file's default
  workdir = str(tmp_path / "yolo")
  results = detection.run(config, workdir)
  out = evaluate.evaluate(workdir)
  assert out["metrics"]["map50"] == pytest.approx(results["map50"], abs=1e-9)
  assert out["metrics"]["map50_95"] == pytest.approx(results["map50_95"], abs=1e-9)

  source = sources.load("shapes", "test")
  paths = _pngs(tmp_path, source, 2, channels=3)
  out = predict.predict(workdir, paths, output=str(tmp_path / "pred" / "dets.json"), min_score=0.0)
  model = models.create("yolo_tiny", num_classes=len(shapes.CLASS_NAMES), num_anchors=config.num_anchors,
                        widths=(4, 8), deep=False)
  expected = train_yolo.make_predict(model, np.array(results["anchors"]), config)(
      train.load_variables(workdir), np.stack([source[i]["image"] for i in range(2)]))
  for i, entry in enumerate(out["images"]):
    valid = np.asarray(expected["valid"][i])
    assert len(entry["detections"]) == valid.sum()
    np.testing.assert_allclose([d["box"] for d in entry["detections"]] or np.zeros((0, 4)),
                               np.asarray(expected["boxes"][i])[valid], atol=1e-5)
    assert os.path.getsize(entry["annotated"]) > 1000
    assert os.path.dirname(entry["annotated"]) == str(tmp_path / "pred")


def test_embedding_evaluate_and_predict(tmp_path):
  config = embedding_default.get_config()
  config.update_from_flattened_dict(dict(
      num_steps=3, p=4, k=2, batch_size=8, embedding_dim=8, val_pairs=40, test_pairs=60, n_folds=3,
      eval_every=3, checkpoint_every=3, log_every=1, eval_batch_size=200,
      **{"optimizer.warmup_steps": 0, "optimizer.learning_rate": 5e-5}))
  config.model_kwargs.widths = (4, 8)
  config.tensorboard = False
  workdir = str(tmp_path / "faces")
  results = embedding_experiment.run(config, workdir)
  out = evaluate.evaluate(workdir, split="test")
  for key in ("verification_accuracy", "auc", "val_threshold", "recognition_top1"):
    assert out["metrics"][key] == pytest.approx(results[key], abs=1e-6)
  assert out["metrics"]["part"] == "test"

  source = sources.load("synthetic_faces", "test")
  paths = _pngs(tmp_path, source, 2, channels=3)
  out = predict.predict(workdir, paths)
  vectors = np.array([entry["embedding"] for entry in out["images"]])
  # The checkpointed network on the same images, normalised by the statistics of all training images.
  mean, std = prepare.image_channel_stats(embedding_experiment.load_identities(config, "train")[0])
  images = np.stack([source[i]["image"] for i in range(2)])
  model = models.create("embedding_net", num_classes=8, widths=(4, 8), blocks_per_stage=1)
  expected = model.apply(train.load_variables(workdir), prepare.make_preprocess(mean, std)({"image": images})["image"])
  np.testing.assert_allclose(vectors, expected, atol=1e-5)
  verdict = out["verification"]
  assert verdict["threshold"] == pytest.approx(results["val_threshold"], abs=1e-6)
  assert verdict["distance"] == pytest.approx(np.linalg.norm(vectors[0] - vectors[1]), abs=1e-5)
  assert verdict["same"] == (verdict["distance"] <= verdict["threshold"])


def test_each_default_config_names_its_experiment_and_style_transfer_points_to_its_image(tmp_path):
  for name, file in cli.DEFAULT_CONFIGS.items():
    if name != "benchmark":
      assert cli.experiment_of_config(cli._default_config(file)) == name
  # A style-transfer workdir: its optimised image is the prediction; there is no split to evaluate.
  (tmp_path / "config.json").write_text(style_default.get_config().to_json())
  with pytest.raises(RunError, match="result.png: no styled image yet"):
    predict.predict(str(tmp_path), [])
  Image.new("RGB", (8, 8)).save(tmp_path / "result.png")
  out = predict.predict(str(tmp_path), [])
  assert out["styled_image"] == str(tmp_path / "result.png") and os.path.exists(tmp_path / "predict.json")
  with pytest.raises(RunError, match="python -m experiments.style_transfer --workdir=NEW_DIR --config.content=x.png"):
    predict.predict(str(tmp_path), ["x.png"])
  with pytest.raises(RunError, match="has no evaluation split"):
    evaluate.evaluate(str(tmp_path))
