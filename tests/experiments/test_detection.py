"""Every detection config runs end to end at tiny size and reports its figures."""

import importlib
import json

import numpy as np
import pytest

from experiments import detection

TINY = dict(num_steps=2, batch_size=4, eval_batch_size=4, eval_limit=4, log_every=1, eval_every=0,
            **{"optimizer.warmup_steps": 0},
            checkpoint_every=0, num_plot_images=1)
CONFIGS = {
    "detection_yolo": dict(model_kwargs=dict(widths=(4, 8), deep=False), max_objects=4),
    "detection_yolo_resnet": dict(model_kwargs=dict(backbone_kwargs=dict(stage_sizes=(1,), widths=(8,)),
                                                    widths=(8,)), max_objects=4),
    "detection_localization": dict(model_kwargs=dict(widths=(4, 8), hidden=8)),
    "detection_landmarks": dict(model_kwargs=dict(widths=(4, 8), hidden=8)),
    "detection_sliding_window": dict(window_features=(4, 8), window_hidden=(8,), num_crops=16, naive_eval_limit=4,
                                     scales=(1.0,)),
    "detection_rcnn": dict(rcnn_train_images=4, num_train_rois=8, num_test_proposals=16, rcnn_widths=(4,),
                           rcnn_hidden=8, warp_size=16),
    "detection_fast_rcnn": dict(rcnn_train_images=4, num_train_rois=8, num_test_proposals=16, rcnn_widths=(4,),
                                rcnn_hidden=8),
}
EXPECTED = {
    "detection_yolo": ("map50", "map50_95", "images_per_s", "anchor_mean_iou"),
    "detection_yolo_resnet": ("map50", "map50_95", "images_per_s", "anchor_mean_iou"),
    "detection_localization": ("test_mean_iou", "test_class_accuracy", "images_per_s"),
    "detection_landmarks": ("test_mean_iou", "test_landmark_error_px", "images_per_s"),
    "detection_sliding_window": ("map50", "images_per_s", "naive_images_per_s"),
    "detection_rcnn": ("map50", "map50_95", "images_per_s", "proposals_per_s"),
    "detection_fast_rcnn": ("map50", "map50_95", "images_per_s", "proposals_per_s"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_runs_and_writes_results(name, tmp_path):
  config = importlib.import_module(f"experiments.configs.{name}").get_config()
  config.update_from_flattened_dict({**TINY, **{k: v for k, v in CONFIGS[name].items() if k != "model_kwargs"}})
  if "model_kwargs" in CONFIGS[name]:
    config.model_kwargs.update(CONFIGS[name]["model_kwargs"])
  results = detection.run(config, str(tmp_path))
  on_disk = json.loads((tmp_path / "results.json").read_text())
  for key in EXPECTED[name]:
    assert np.isfinite(results[key]) and key in on_disk
  if "map50" in results:
    assert 0.0 <= results["map50_95"] <= results["map50"] <= 1.0
  if name == "detection_sliding_window":
    assert results["naive_equals_convolutional"]
  assert any(p.suffix == ".png" for p in (tmp_path / "plots").iterdir())
  assert (tmp_path / "metrics.jsonl").exists()


def test_unknown_task_is_rejected(tmp_path):
  config = importlib.import_module("experiments.configs.detection_yolo").get_config()
  config.task = "ssd"
  with pytest.raises(ValueError, match="config.task"):
    detection.run(config, str(tmp_path))
