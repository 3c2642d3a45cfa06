"""The transfer claims runner (issue 21, item 2) at tiny size: what each method freezes, trains and reports."""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from cnnjax import train
from experiments.claims import transfer
from experiments.configs import claims_transfer


def tiny(steps=4):
  config = claims_transfer.get_config()
  config.num_steps = config.eval_every = config.checkpoint_every = config.log_every = steps
  config.optimizer.warmup_steps = 0
  config.claim.update(pretrain_steps=steps, examples_per_class=(2,), freeze_stages=(0, 4), seeds=(0,))
  config.claim.learning_rates = ml_collections.ConfigDict({"freeze0": 1e-4})
  return config


def test_target_configs_freeze_cache_and_set_rates_per_method():
  config = tiny()
  made = {m: transfer.target_config(config, m, 2, 0, "/pre") for m in transfer.methods(config.claim)}
  assert list(made) == ["freeze0", "freeze4", "cached", "scratch"]
  assert made["freeze4"].transfer.freeze_stages == 4 and made["freeze4"].transfer.init_from == "/pre"
  assert made["cached"].transfer.cached_head == "fc3" and made["cached"].augment == ()
  assert made["scratch"].transfer.init_from == ""
  assert made["freeze0"].optimizer.learning_rate == 1e-4
  assert made["freeze4"].optimizer.learning_rate == config.optimizer.learning_rate
  assert all(c.batch_size == 10 and c.examples_per_class == 2 for c in made.values())  # 5 classes * 2 images


@pytest.mark.parametrize("field, value, message", [
    ("source_classes", (0, 15), "share classes [15]"),
    ("learning_rates", {"freeze3": 1e-3}, "freeze3"),
])
def test_bad_claims_are_refused_before_training(tmp_path, field, value, message):
  config = tiny()
  config.claim[field] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value
  with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
    transfer.run(config, str(tmp_path))
  assert not os.path.exists(tmp_path / "pretrain")


def test_run_keeps_frozen_layers_and_reports_every_method(tmp_path):
  results = transfer.run(tiny(), str(tmp_path))
  on_disk = json.loads((tmp_path / "results.json").read_text())
  assert on_disk == pytest.approx(results)
  for method in ("freeze0", "freeze4", "cached", "scratch"):
    assert 0.0 <= results[f"{method}/n2/test_accuracy"] <= 1.0
    assert results[f"{method}/n2/test_accuracy_std"] == 0.0  # one seed
  pre = train.load_variables(str(tmp_path / "pretrain"))["params"]
  params = {m: train.load_variables(str(tmp_path / f"{m}_n2_s0"))["params"] for m in ("freeze0", "freeze4", "scratch")}
  for layer in ("conv1", "conv2", "fc1", "fc2"):
    jax.tree.map(np.testing.assert_array_equal, params["freeze4"][layer], pre[layer])  # frozen trunk
  assert not np.allclose(params["freeze0"]["conv1"]["kernel"], pre["conv1"]["kernel"])  # fine-tuned
  assert not np.allclose(params["scratch"]["conv1"]["kernel"], pre["conv1"]["kernel"])
  assert pre["fc3"]["kernel"].shape[-1] == 15 and params["freeze4"]["fc3"]["kernel"].shape[-1] == 5
  assert (tmp_path / "plots" / "transfer.png").exists()
