"""COCO mAP on hand-made cases, and the detection pictures."""

import os

import numpy as np
import pytest
from PIL import Image

from cnnjax.detection import evaluate_detections
from cnnjax.viz.detections import plot_iou_vs_k, save_detections

GT = [
    {"boxes": np.array([[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.8]]), "classes": np.array([0, 1])},
    {"boxes": np.array([[0.2, 0.3, 0.6, 0.7]]), "classes": np.array([0])},
]


def perfect():
  return [{"boxes": g["boxes"], "classes": g["classes"], "scores": np.linspace(0.9, 0.8, len(g["classes"]))}
          for g in GT]


def test_perfect_detections_score_one():
  m = evaluate_detections(GT, perfect(), 3, class_names=["a", "b", "c"], image_size=(100, 100))
  assert m["map50"] == pytest.approx(1.0) and m["map50_95"] == pytest.approx(1.0)
  assert m["map50/a"] == pytest.approx(1.0) and m["map50_95/b"] == pytest.approx(1.0)
  assert np.isnan(m["map50/c"])  # no ground truth of class c


def test_shifted_box_keeps_map50_but_lowers_map50_95():
  dets = perfect()
  # Shift class b's box right by 0.04 of 0.4 width: IoU = 0.36*0.3 / (2*0.12 - 0.108) = 0.818.
  dets[0]["boxes"] = dets[0]["boxes"] + np.array([[0, 0, 0, 0], [0.04, 0, 0.04, 0]])
  m = evaluate_detections(GT, dets, 2, image_size=(100, 100))
  assert m["map50"] == pytest.approx(1.0)
  # IoU 0.818 passes thresholds 0.5..0.8 (7 of 10): class b gets 0.7, class a 1.0.
  assert m["map50_95/class_1"] == pytest.approx(0.7, abs=1e-6)
  assert m["map50_95"] == pytest.approx(0.85, abs=1e-6)


def test_missed_object_and_wrong_class_lower_map50():
  dets = perfect()
  dets[1] = {"boxes": np.zeros((0, 4)), "classes": np.zeros(0, int), "scores": np.zeros(0)}
  m = evaluate_detections(GT, dets, 2)
  # Class 0: one of two found, at precision 1 -> AP over 101 recall points = 51/101.
  assert m["map50/class_0"] == pytest.approx(51 / 101, abs=1e-6)
  assert m["map50/class_1"] == pytest.approx(1.0)
  wrong = perfect()
  wrong[0]["classes"] = np.array([1, 0])
  assert evaluate_detections(GT, wrong, 2)["map50/class_1"] == pytest.approx(0.0)


def test_padding_rows_are_ignored_and_no_detections_give_zero():
  dets = perfect()
  dets[0] = {**{k: np.concatenate([v, v[:1] * 0]) for k, v in dets[0].items()}, "valid": np.array([1, 1, 0], bool)}
  dets[0]["boxes"][2] = [0.0, 0.0, 0.05, 0.05]  # a false positive, masked out by `valid`
  dets[0]["scores"][2] = 0.99
  assert evaluate_detections(GT, dets, 2)["map50"] == pytest.approx(1.0)
  empty = [{"boxes": np.zeros((0, 4)), "classes": np.zeros(0), "scores": np.zeros(0)} for _ in GT]
  assert evaluate_detections(GT, empty, 2)["map50"] == 0.0
  with pytest.raises(ValueError, match="images"):
    evaluate_detections(GT, empty[:1], 2)


def test_pictures_are_written(tmp_path):
  images = [np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 128, np.uint8)]
  path = save_detections(str(tmp_path / "d.png"), images, perfect(), GT, class_names=["a", "b"])
  assert Image.open(path).size[0] > 100
  path = plot_iou_vs_k(str(tmp_path / "k.png"), {1: 0.5, 2: 0.6, 3: 0.7})
  assert os.path.getsize(path) > 1000
  with pytest.raises(ValueError, match="images"):
    save_detections(str(tmp_path / "e.png"), [])
