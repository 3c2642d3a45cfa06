"""The style-transfer experiment end to end at 64x64 for a few steps."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnjax.train.workdir import WorkdirError
from experiments import style_transfer
from experiments.configs import style_default


def test_run_writes_everything(tmp_path):
  config = style_default.get_config()
  config.image_size, config.num_steps, config.scales = 64, 6, (1.0,)
  config.log_every, config.checkpoint_every, config.arch = 2, 3, "vgg16"
  config.content_layer, config.style_layers, config.style_weights = "relu2_2", ("relu1_1", "relu3_1"), (0.5, 0.5)
  results = style_transfer.run(config, str(tmp_path))
  assert results["weights"] == "random" and results["steps"] == 6
  assert results["style_cost"] < results["style_cost_start"]
  assert json.loads((tmp_path / "results.json").read_text())["style_cost"] == results["style_cost"]
  assert json.loads((tmp_path / "config.json").read_text())["image_size"] == 64
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [0, 2, 4, 6] and {"content", "style", "total"} <= set(rows[0])
  assert Image.open(tmp_path / "result.png").size == (64, 64)
  for name in ("style_transfer.png", "costs.png"):
    assert (tmp_path / "plots" / name).stat().st_size > 0
  with np.load(tmp_path / "checkpoints" / "state.npz", allow_pickle=False) as f:
    assert int(f["step"]) == 6 and f["image"].shape == (64, 64, 3)
  # The same workdir at another image size is refused before anything is written ...
  config.image_size = 32
  with pytest.raises(WorkdirError, match=r"(?s)Fields that change results differ.*  image_size: 64 -> 32"):
    style_transfer.run(config, str(tmp_path))
  assert json.loads((tmp_path / "config.json").read_text())["image_size"] == 64
  # ... and a truncated state file is named with the way out.
  config.image_size = 64
  state = tmp_path / "checkpoints" / "state.npz"
  state.write_bytes(state.read_bytes()[:1000])
  with pytest.raises(ValueError, match=rf"{state} is damaged .*; delete it to restart the optimisation"):
    style_transfer.run(config, str(tmp_path))
