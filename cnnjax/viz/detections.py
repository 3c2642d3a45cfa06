"""Pictures of detections: predicted and true boxes drawn on images, and the anchor elbow plot."""

import os
from typing import Mapping, Sequence

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
import numpy as np

# Bare Figures need no pyplot backend: the library never chooses one, so notebooks keep theirs.
_COLOURS = matplotlib.colormaps["tab10"].colors


def _draw(ax, image: np.ndarray, detections: Mapping | None, ground_truth: Mapping | None,
          class_names: Sequence[str], score_threshold: float) -> None:
  h, w = image.shape[:2]
  ax.imshow(np.squeeze(image), cmap="gray" if image.ndim == 2 or image.shape[-1] == 1 else None)
  ax.set_axis_off()
  if ground_truth is not None:
    for box in np.asarray(ground_truth["boxes"]).reshape(-1, 4):
      x1, y1, x2, y2 = box * np.array([w, h, w, h])
      ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="white", ls="--", lw=1))
  if detections is not None:
    scores = np.asarray(detections["scores"]).reshape(-1)
    valid = np.asarray(detections.get("valid", np.ones_like(scores, bool))).reshape(-1)
    for box, score, cls, ok in zip(np.asarray(detections["boxes"]).reshape(-1, 4), scores,
                                   np.asarray(detections["classes"]).reshape(-1), valid):
      if not ok or score < score_threshold:
        continue
      x1, y1, x2, y2 = box * np.array([w, h, w, h])
      colour = _COLOURS[int(cls) % len(_COLOURS)]
      ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, lw=1.5))
      name = class_names[int(cls)] if 0 <= int(cls) < len(class_names) else str(int(cls))
      ax.text(x1, y1, f"{name} {score:.2f}", color="white", fontsize=6, va="bottom",
              bbox=dict(facecolor=colour, alpha=0.7, pad=0.5, lw=0))
    if "points" in detections:
      points = np.asarray(detections["points"]).reshape(-1, 2) * np.array([w, h])
      ax.scatter(points[:, 0], points[:, 1], s=12, c="yellow", edgecolors="black", linewidths=0.5)


def save_detections(path: str, images: Sequence[np.ndarray], detections: Sequence[Mapping] | None = None,
                    ground_truth: Sequence[Mapping] | None = None, *, class_names: Sequence[str] = (),
                    score_threshold: float = 0.3, columns: int = 4) -> str:
  """Draws detections (coloured, with class and score) and ground truth (white dashed) on a grid of images.

  A detection dict may carry `points` `[K, 2]` (normalised x, y landmarks), drawn as dots.

  Boxes are normalised `xyxy`. Detections below `score_threshold` or not `valid`
  are not drawn. Writes a PNG to `path` and returns it.
  """
  n = len(images)
  if n == 0:
    raise ValueError("images is empty: nothing to draw")
  cols = min(columns, n)
  rows = -(-n // cols)
  fig = Figure(figsize=(2.5 * cols, 2.5 * rows))
  axes = fig.subplots(rows, cols, squeeze=False)
  for i, ax in enumerate(axes.flat):
    if i < n:
      _draw(ax, np.asarray(images[i]), detections[i] if detections is not None else None,
            ground_truth[i] if ground_truth is not None else None, class_names, score_threshold)
    else:
      ax.set_axis_off()
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=120)
  return path


def plot_iou_vs_k(path: str, mean_iou: Mapping[int, float]) -> str:
  """Mean best-anchor IoU against the number of anchors k (the YOLOv2 elbow plot); writes a PNG."""
  ks = sorted(mean_iou)
  fig = Figure(figsize=(4, 3))
  ax = fig.subplots()
  ax.plot(ks, [mean_iou[k] for k in ks], "o-")
  ax.set_xlabel("number of anchors k")
  ax.set_ylabel("mean IoU with best anchor")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=120)
  return path
