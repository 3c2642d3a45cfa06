"""The classic-networks claims runner at tiny size, and its costs against hand-counted multiplies."""

import json
import os

import pytest

from cnnjax import models
from cnnjax.ops import flops
from experiments.claims import classic_networks
from experiments.configs import claims_classic_networks


def alexnet_multiplies(width: float, classes: int) -> int:
  """AlexNet at 64x64 counted by hand: conv1 15x15 (11/4, pad 2), pool 7x7, conv2 7x7, pool 3x3, conv3-5 3x3,
  pool 1x1 then the adaptive pool repeats it to 6x6 for fc6."""
  c = [max(1, round(f * width)) for f in (64, 192, 384, 256, 256)]
  hidden = max(1, round(4096 * width))
  convs = (15 * 15 * c[0] * 11 * 11 * 3 + 7 * 7 * c[1] * 5 * 5 * c[0] + 3 * 3 * c[2] * 9 * c[1]
           + 3 * 3 * c[3] * 9 * c[2] + 3 * 3 * c[4] * 9 * c[3])
  return convs + 6 * 6 * c[4] * hidden + hidden * hidden + hidden * classes


def test_googlenet_costs_aux_heads_and_bottleneck():
  shape, w = (64, 64, 3), 0.125
  plain, aux, flat = (classic_networks.costs(models.create("googlenet", num_classes=9, width=w, **kw), shape)
                      for kw in ({}, {"aux_logits": True}, {"bottleneck": False}))
  # An aux head reads a 4x4 pool of 4a (512 x w = 64 channels) or 4d (528 x w = 66): 1x1 conv to 16 (BatchNorm,
  # no bias), fc1 to 128, fc2 to the 9 classes.
  head_params = lambda c_in: c_in * 16 + 2 * 16 + 16 * 16 * 128 + 128 + 128 * 9 + 9
  head_multiplies = lambda c_in: 4 * 4 * c_in * 16 + 16 * 16 * 128 + 128 * 9
  assert aux["num_params"] - plain["num_params"] == head_params(64) + head_params(66)
  assert aux["multiplies"] == plain["multiplies"] == plain["train_multiplies"]
  assert aux["train_multiplies"] - aux["multiplies"] == head_multiplies(64) + head_multiplies(66)
  # Module 3a at 8x8 on 24 channels (192 x w), its 3x3 and 5x5 branches: 1x1 to 12 then 3x3 to 16, 1x1 to 2 then
  # 5x5 to 4; without the reductions the 3x3 and 5x5 read all 24 channels.
  with_1x1 = 8 * 8 * (24 * 12 + 9 * 12 * 16 + 24 * 2 + 25 * 2 * 4)
  without = 8 * 8 * (9 * 24 * 16 + 25 * 24 * 4)
  branches = lambda shape_kwargs: sum(
      layer.multiplies for layer in flops.count_flops(
          models.create("googlenet", num_classes=9, width=w, **shape_kwargs), (1,) + shape).layers
      if layer.name.startswith(("inception3a/branch3", "inception3a/branch5")))
  assert branches({}) == with_1x1 and branches({"bottleneck": False}) == without
  assert flat["multiplies"] - plain["multiplies"] > without - with_1x1 > 0

def tiny_config():
  config = claims_classic_networks.get_config()
  config.num_steps = config.eval_every = config.checkpoint_every = config.log_every = 2
  config.optimizer.warmup_steps = 0
  config.batch_size = 8
  config.claim.run_names = ("alexnet",)
  config.claim.width = 0.0625
  return config


def test_classic_networks_runs(tmp_path):
  results = classic_networks.run(tiny_config(), str(tmp_path))
  assert json.load(open(tmp_path / "results.json")).keys() == results.keys()
  assert results["alexnet/multiplies"] == results["alexnet/train_multiplies"] == alexnet_multiplies(0.0625, 9)
  assert results["alexnet/model"] == "alexnet" and results["width"] == 0.0625
  assert results["course_example/multiplies_5x5"] == 28 * 28 * 32 * 5 * 5 * 192  # the course's 120 million
  assert results["course_example/multiplies_1x1_then_5x5"] == 28 * 28 * (16 * 192 + 32 * 5 * 5 * 16)  # 12.4 million
  written = json.load(open(tmp_path / "alexnet_s0" / "results.json"))
  assert results["alexnet/num_params"] == written["num_params"]
  assert results["alexnet/test_accuracy"] == written["test_accuracy"]
  assert 0 <= results["alexnet/train_accuracy"] <= 1 and results["alexnet/test_accuracy_std"] == 0
  assert results["alexnet/generalisation_gap"] == pytest.approx(
      results["alexnet/train_accuracy"] - results["alexnet/test_accuracy"])
  assert os.path.exists(tmp_path / "plots" / "classic_networks.png")


@pytest.mark.parametrize("field,value,match", [
    ("run_names", ("alexnet", "lenet"), r"run_names=\('alexnet', 'lenet'\).*unknown \['lenet'\]"),
    ("run_names", (), r"run_names=\(\)"),
    ("width", 0.0, r"width=0.0: expected a channel multiplier > 0"),
])
def test_bad_claim_config(tmp_path, field, value, match):
  config = tiny_config()
  config.claim[field] = value
  with pytest.raises(ValueError, match=match):
    classic_networks.run(config, str(tmp_path))
  del config["claim"]
  with pytest.raises(ValueError, match="no claim field"):
    classic_networks.run(config, str(tmp_path))
