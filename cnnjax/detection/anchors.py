"""Anchor boxes by k-means over box (w, h) with distance 1 - IoU (YOLOv2)."""

from typing import Sequence

import numpy as np


def _wh_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
  """IoU of (w, h) pairs aligned at a common centre: [N,2] x [K,2] -> [N,K]."""
  inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
  union = (wh[:, 0] * wh[:, 1])[:, None] + (anchors[:, 0] * anchors[:, 1])[None, :] - inter
  return inter / union


def kmeans_anchors(wh: np.ndarray, k: int, *, seed: int = 0, max_iters: int = 300) -> tuple[np.ndarray, float]:
  """Clusters box sizes into `k` anchors with distance 1 - IoU (boxes aligned at a common centre).

  Starts from k distinct boxes drawn with `seed`; each step assigns every box to
  the anchor of highest IoU and moves each anchor to the median (w, h) of its
  boxes (an empty cluster keeps its anchor), until the assignment is stable.

  Args:
    wh: `[N, 2]` positive box widths and heights.
    k: number of anchors, 1 <= k <= number of distinct boxes.
    seed: picks the initial anchors.
    max_iters: bound on the number of assignment steps.

  Returns:
    `(anchors[k, 2], mean_iou)`: anchors sorted by area, and the mean over boxes
    of the IoU with their best anchor.
  """
  wh = np.asarray(wh, np.float64)
  if wh.ndim != 2 or wh.shape[1] != 2:
    raise ValueError(f"wh must have shape [N, 2], got shape {wh.shape}")
  if not np.all(np.isfinite(wh)) or np.any(wh <= 0):
    raise ValueError("wh must hold finite, positive widths and heights")
  distinct = np.unique(wh, axis=0)
  if not isinstance(k, (int, np.integer)) or not 1 <= k <= len(distinct):
    raise ValueError(f"k must be an integer in [1, {len(distinct)}] (the number of distinct boxes), got {k!r}")
  rng = np.random.default_rng(seed)
  anchors = distinct[rng.choice(len(distinct), k, replace=False)]
  assign = None
  for _ in range(max_iters):
    new_assign = np.argmax(_wh_iou(wh, anchors), axis=1)
    if assign is not None and np.array_equal(new_assign, assign):
      break
    assign = new_assign
    for j in range(k):
      members = wh[assign == j]
      if len(members):
        anchors[j] = np.median(members, axis=0)
  anchors = anchors[np.argsort(anchors[:, 0] * anchors[:, 1])]
  return anchors.astype(np.float32), float(np.mean(np.max(_wh_iou(wh, anchors), axis=1)))


def mean_iou_vs_k(wh: np.ndarray, ks: Sequence[int], *, seed: int = 0) -> dict[int, float]:
  """The mean best-anchor IoU of `kmeans_anchors` for each k (the elbow plot of YOLOv2)."""
  return {int(k): kmeans_anchors(wh, int(k), seed=seed)[1] for k in ks}
