"""mAP@0.5 and mAP@0.5:0.95, overall and per class, with pycocotools' COCOeval built in memory."""

import contextlib
import io
from typing import Sequence

import numpy as np


def _coco_xywh(boxes: np.ndarray, image_size: Sequence[int]) -> np.ndarray:
  h, w = image_size
  b = np.asarray(boxes, np.float64).reshape(-1, 4) * np.array([w, h, w, h])
  return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def evaluate_detections(ground_truth: Sequence[dict], detections: Sequence[dict], num_classes: int, *,
                        class_names: Sequence[str] | None = None,
                        image_size: Sequence[int] = (1, 1)) -> dict[str, float]:
  """COCO-style mean average precision of detections against ground truth.

  Args:
    ground_truth: per image, `boxes [M, 4]` (normalised `xyxy`) and `classes [M]`.
    detections: per image (same order), `boxes [K, 4]`, `scores [K]`, `classes [K]`;
      an optional bool `valid [K]` drops padding rows.
    num_classes: C; classes are 0..C-1.
    class_names: names for the per-class keys (default `class_<i>`).
    image_size: (H, W) the normalised boxes are scaled to (COCO's area ranges
      are not used, so this only sets units).

  Returns:
    `map50`, `map50_95` over classes that have ground truth, and per class
    `map50/<name>`, `map50_95/<name>` (NaN for a class with no ground truth).
    Both are 0 when there are no detections at all.
  """
  from pycocotools.coco import COCO  # pylint: disable=g-import-not-at-top
  from pycocotools.cocoeval import COCOeval  # pylint: disable=g-import-not-at-top

  if len(ground_truth) != len(detections):
    raise ValueError(f"detections has {len(detections)} images but ground_truth has {len(ground_truth)}")
  names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
  if len(names) != num_classes:
    raise ValueError(f"class_names has {len(names)} names, expected num_classes={num_classes}")
  images, annotations, results = [], [], []
  for img_id, (gt, det) in enumerate(zip(ground_truth, detections), start=1):
    images.append({"id": img_id, "height": int(image_size[0]), "width": int(image_size[1])})
    for box, cls in zip(_coco_xywh(gt["boxes"], image_size), np.asarray(gt["classes"]).reshape(-1)):
      annotations.append({"id": len(annotations) + 1, "image_id": img_id, "category_id": int(cls) + 1,
                          "bbox": box.tolist(), "area": float(box[2] * box[3]), "iscrowd": 0})
    keep = np.asarray(det.get("valid", np.ones(len(np.asarray(det["scores"]).reshape(-1)), bool))).reshape(-1)
    det_boxes = _coco_xywh(det["boxes"], image_size)[keep]
    for box, score, cls in zip(det_boxes, np.asarray(det["scores"]).reshape(-1)[keep],
                               np.asarray(det["classes"]).reshape(-1)[keep]):
      results.append({"image_id": img_id, "category_id": int(cls) + 1, "bbox": box.tolist(), "score": float(score)})
  per_class_gt = np.bincount([a["category_id"] - 1 for a in annotations], minlength=num_classes)
  out = {}
  if not results:
    out.update(map50=0.0, map50_95=0.0)
    for i, name in enumerate(names):
      out[f"map50/{name}"] = out[f"map50_95/{name}"] = 0.0 if per_class_gt[i] else float("nan")
    return out
  with contextlib.redirect_stdout(io.StringIO()):  # COCO prints progress and a summary table
    coco_gt = COCO()
    coco_gt.dataset = {"images": images, "annotations": annotations,
                       "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]}
    coco_gt.createIndex()
    coco_dt = coco_gt.loadRes(results)
    ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
    ev.evaluate()
    ev.accumulate()
  # precision: [T iou thresholds, R recall points, K classes, A area ranges, M max dets]; area 'all', 100 dets.
  precision = ev.eval["precision"][:, :, :, 0, -1]
  ap = np.full((len(ev.params.iouThrs), num_classes), np.nan)
  for k in range(num_classes):
    if per_class_gt[k]:
      p = precision[:, :, k]
      ap[:, k] = np.where(p > -1, p, 0.0).mean(axis=1)
  iou50 = int(np.argmin(np.abs(ev.params.iouThrs - 0.5)))
  out["map50"] = float(np.nanmean(ap[iou50]))
  out["map50_95"] = float(np.nanmean(ap.mean(axis=0)))
  for k, name in enumerate(names):
    out[f"map50/{name}"] = float(ap[iou50, k])
    out[f"map50_95/{name}"] = float(ap[:, k].mean())
  return out
