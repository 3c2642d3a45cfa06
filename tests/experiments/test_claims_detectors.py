"""The detectors and window-stride claims runners end to end at tiny size: results.json holds consistent figures."""

import json

import numpy as np
import pytest

from experiments.claims import detectors, window_stride
from experiments.configs import claims_detectors, claims_window_stride, detection_faster_rcnn
from experiments.detection import config_checks

TINY = dict(num_steps=2, batch_size=4, eval_batch_size=4, log_every=1, checkpoint_every=0, num_plot_images=1)


def test_detectors_table(tmp_path):
  config = claims_detectors.get_config()
  config.claim.update(dict(tasks=("fast_rcnn", "faster_rcnn"), eval_limit=4))  # R-CNN and YOLO: test_detection
  for task in config.claim.tasks:
    config[task].update_from_flattened_dict({**TINY, "optimizer.warmup_steps": 0})
  for task in config.claim.tasks:
    config[task].update(dict(rcnn_widths=(4,), rcnn_hidden=8, num_train_rois=8, num_test_proposals=16))
  config.fast_rcnn.rcnn_train_images = 4
  config.faster_rcnn.update(dict(rpn_hidden=8, rpn_batch=16, pre_nms_topk=32))
  results = detectors.run(config, str(tmp_path))
  on_disk = json.loads((tmp_path / "results.json").read_text())
  assert on_disk["tasks"] == list(config.claim.tasks)
  for task in config.claim.tasks:
    assert 0.0 <= on_disk[f"{task}/map50_95"] <= on_disk[f"{task}/map50"] <= 1.0
    for key in ("train_images_per_s", "network_images_per_s", "test_images_per_s", "wall_s", "user_cpu_s"):
      assert np.isfinite(on_disk[key := f"{task}/{key}"]) and on_disk[key] > 0
    assert (tmp_path / task / "results.json").exists()
  # selective search on the host makes end to end slower than the network
  assert results["fast_rcnn/test_images_per_s"] < results["fast_rcnn/network_images_per_s"]
  assert results["faster_rcnn/test_images_per_s"] == results["faster_rcnn/network_images_per_s"]
  assert 0.0 <= results["faster_rcnn/proposal_recall50"] <= 1.0
  assert (tmp_path / "plots" / "detectors.png").exists()


def test_unknown_task_is_rejected(tmp_path):
  config = claims_detectors.get_config()
  config.claim.tasks = ("ssd",)
  with pytest.raises(ValueError, match="ssd"):
    detectors.run(config, str(tmp_path))


def test_faster_rcnn_config_checks():
  config = detection_faster_rcnn.get_config()
  config.rpn_bg_iou = 0.8
  with pytest.raises(ValueError, match="rpn_bg_iou"):
    config_checks.check_config(config)
  config = detection_faster_rcnn.get_config()
  config.max_objects = 2
  with pytest.raises(ValueError, match="max_objects"):
    config_checks.check_config(config)


def test_window_stride_table(tmp_path):
  config = claims_window_stride.get_config()
  config.update_from_flattened_dict({**TINY, "optimizer.warmup_steps": 0, "eval_limit": 4, "naive_eval_limit": 2,
                                     "num_crops": 16})
  config.update(dict(window_features=(4, 8), window_hidden=(8,), scales=(1.0,)))
  config.claim.update(dict(strides=(2, 4, 8), naive_images=2))
  window_stride.run(config, str(tmp_path))
  results = json.loads((tmp_path / "results.json").read_text())
  windows = [results[f"stride{s}/windows_per_image"] for s in (2, 4, 8)]
  assert windows == [33 * 33, 17 * 17, 9 * 9]  # (96 - 32) / stride + 1 windows a side
  for s in (2, 4, 8):
    assert results[f"stride{s}/naive_equals_convolutional"]
    assert 0.0 <= results[f"stride{s}/map50_95"] <= results[f"stride{s}/map50"] <= 1.0
    for key in ("naive_s_per_image", "conv_s_per_image", "naive_network_s_per_image", "conv_network_s_per_image"):
      assert results[f"stride{s}/{key}"] > 0
  assert (tmp_path / "plots" / "window_stride.png").exists()
