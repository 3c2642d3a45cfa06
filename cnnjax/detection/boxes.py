"""Box formats, IoU, generalized IoU and jit-able (batched) non-maximum suppression.

A leaf module: imports nothing from the rest of cnnjax. Boxes are `[..., 4]`
arrays; `xyxy` is (x1, y1, x2, y2), `xywh` is (x1, y1, w, h), `cxcywh` is
(cx, cy, w, h). Pairwise functions take `xyxy`.

Edge inputs follow torchvision.ops: zero boxes give empty results (`box_iou`
of `[0, 4] x [M, 4]` is `[0, M]`, `nms` of no boxes keeps none). Called on
concrete arrays, `box_iou`, `generalized_box_iou`, `nms` and `batched_nms`
reject NaN/inf coordinates, boxes with x2 < x1 or y2 < y1, and non-finite
scores with a `ValueError` naming the first bad index. Inside `jit` nothing can
raise: there `nms` never keeps a box with a non-finite score or malformed
coordinates, and `box_iou` gives 0 for pairs with a malformed box.
"""

import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_format(name: str, fmt: str) -> None:
  if fmt not in FORMATS:
    raise ValueError(f"{name} must be one of {FORMATS}, got {fmt!r}")


def _is_traced(*arrays) -> bool:
  return any(isinstance(a, jax.core.Tracer) for a in arrays)


def validate_boxes(boxes, fmt: str = "xyxy", name: str = "boxes") -> np.ndarray:
  """Checks concrete boxes on the host: shape [..., 4], finite, x2 >= x1 and y2 >= y1.

  Returns:
    The boxes as a NumPy array.

  Raises:
    ValueError: wrong shape, NaN/inf coordinates, or negative extent.
  """
  _check_format("fmt", fmt)
  arr = np.asarray(boxes)
  if arr.ndim < 1 or arr.shape[-1] != 4:
    raise ValueError(f"{name} must have shape [..., 4], got shape {arr.shape}")
  if not np.all(np.isfinite(arr)):
    bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr).all(-1))[0])
    raise ValueError(f"{name} must be finite; box at index {bad} is {arr[bad]}")
  if fmt == "xyxy":
    extent = arr[..., 2:] - arr[..., :2]
  else:
    extent = arr[..., 2:]
  if np.any(extent < 0):
    bad = tuple(int(i) for i in np.argwhere((extent < 0).any(-1))[0])
    what = "x2 >= x1 and y2 >= y1" if fmt == "xyxy" else "w >= 0 and h >= 0"
    raise ValueError(f"{name} ({fmt}) must have {what}; box at index {bad} is {arr[bad]}")
  return arr


def box_convert(boxes: jax.Array, in_fmt: str, out_fmt: str) -> jax.Array:
  """Converts `[..., 4]` boxes between 'xyxy', 'xywh' and 'cxcywh'."""
  _check_format("in_fmt", in_fmt)
  _check_format("out_fmt", out_fmt)
  boxes = jnp.asarray(boxes)
  if in_fmt == out_fmt:
    return boxes
  a, b, c, d = jnp.moveaxis(boxes, -1, 0)
  if in_fmt == "xywh":
    x1, y1, x2, y2 = a, b, a + c, b + d
  elif in_fmt == "cxcywh":
    x1, y1, x2, y2 = a - c / 2, b - d / 2, a + c / 2, b + d / 2
  else:
    x1, y1, x2, y2 = a, b, c, d
  if out_fmt == "xywh":
    out = (x1, y1, x2 - x1, y2 - y1)
  elif out_fmt == "cxcywh":
    out = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
  else:
    out = (x1, y1, x2, y2)
  return jnp.stack(out, axis=-1)


def box_area(boxes: jax.Array) -> jax.Array:
  """Area of `xyxy` boxes (zero for degenerate ones)."""
  boxes = jnp.asarray(boxes)
  wh = jnp.clip(boxes[..., 2:] - boxes[..., :2], 0.0)
  return wh[..., 0] * wh[..., 1]


def _inter_union(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
  a, b = jnp.asarray(a), jnp.asarray(b)
  lt = jnp.maximum(a[..., :, None, :2], b[..., None, :, :2])
  rb = jnp.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
  wh = jnp.clip(rb - lt, 0.0)
  inter = wh[..., 0] * wh[..., 1]
  union = box_area(a)[..., :, None] + box_area(b)[..., None, :] - inter
  return inter, union


def _safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
  # Two empty boxes have union 0: define their IoU as 0 rather than NaN.
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def _check_pair(a, b) -> None:
  for name, boxes in (("a", a), ("b", b)):
    if not _is_traced(boxes):
      validate_boxes(boxes, name=name)


def box_iou(a: jax.Array, b: jax.Array) -> jax.Array:
  """Pairwise IoU of `xyxy` boxes: `[..., N, 4] x [..., M, 4] -> [..., N, M]` (validated outside jit)."""
  _check_pair(a, b)
  inter, union = _inter_union(a, b)
  return _safe_div(inter, union)


def generalized_box_iou(a: jax.Array, b: jax.Array) -> jax.Array:
  """Pairwise generalized IoU (Rezatofighi et al. 2019): IoU - (hull - union) / hull (validated outside jit)."""
  _check_pair(a, b)
  a, b = jnp.asarray(a), jnp.asarray(b)
  inter, union = _inter_union(a, b)
  lt = jnp.minimum(a[..., :, None, :2], b[..., None, :, :2])
  rb = jnp.maximum(a[..., :, None, 2:], b[..., None, :, 2:])
  wh = jnp.clip(rb - lt, 0.0)
  hull = wh[..., 0] * wh[..., 1]
  return _safe_div(inter, union) - _safe_div(hull - union, hull)


def wh_iou(wh_a: jax.Array, wh_b: jax.Array) -> jax.Array:
  """Pairwise IoU of boxes given only (w, h), aligned at a common centre: `[N,2] x [M,2] -> [N,M]`."""
  wh_a, wh_b = jnp.asarray(wh_a), jnp.asarray(wh_b)
  inter = (jnp.minimum(wh_a[:, None, 0], wh_b[None, :, 0]) *
           jnp.minimum(wh_a[:, None, 1], wh_b[None, :, 1]))
  union = (wh_a[:, 0] * wh_a[:, 1])[:, None] + (wh_b[:, 0] * wh_b[:, 1])[None, :] - inter
  return _safe_div(inter, union)


def _greedy_keep(iou: jax.Array, valid: jax.Array, iou_threshold) -> jax.Array:
  """Greedy suppression over boxes already sorted by decreasing score."""
  n = iou.shape[0]
  earlier = jnp.arange(n)

  def body(i, keep):
    suppressed = jnp.any(keep & (earlier < i) & (iou[:, i] > iou_threshold))
    return keep.at[i].set(valid[i] & ~suppressed)

  return jax.lax.fori_loop(0, n, body, jnp.zeros((n,), bool))


@functools.partial(jax.jit, static_argnames=("max_outputs",))
def _nms_impl(boxes, scores, same_group, iou_threshold, max_outputs, score_threshold):
  n = boxes.shape[0]
  if n == 0:
    return jnp.full((max_outputs,), -1, jnp.int32)
  # Stable sort of -score: equal scores keep index order, lower index first.
  order = jnp.argsort(-scores, stable=True)
  sorted_boxes = boxes[order]
  iou = box_iou(sorted_boxes, sorted_boxes)
  if same_group is not None:
    iou = jnp.where(same_group[order][:, order], iou, 0.0)
  # What validation rejects outside jit is never kept inside it.
  valid = jnp.isfinite(scores[order]) & jnp.all(jnp.isfinite(sorted_boxes), axis=-1)
  valid &= jnp.all(sorted_boxes[:, 2:] >= sorted_boxes[:, :2], axis=-1)
  if score_threshold is not None:
    valid &= scores[order] > score_threshold
  keep = _greedy_keep(iou, valid, iou_threshold)
  front = jnp.argsort(~keep, stable=True)  # kept ones first, still by decreasing score
  idx = jnp.where(keep[front], order[front], -1).astype(jnp.int32)
  if max_outputs <= n:
    return idx[:max_outputs]
  return jnp.concatenate([idx, jnp.full((max_outputs - n,), -1, jnp.int32)])


def _check_nms_args(boxes, scores, iou_threshold, max_outputs, classes=None):
  if not _is_traced(boxes):
    validate_boxes(boxes)
  if jnp.ndim(boxes) != 2:
    raise ValueError(f"boxes must have shape [N, 4], got shape {jnp.shape(boxes)}")
  n = jnp.shape(boxes)[0]
  if jnp.shape(scores) != (n,):
    raise ValueError(f"scores must have shape ({n},) to match boxes, got shape {jnp.shape(scores)}")
  if not _is_traced(scores) and not np.all(np.isfinite(np.asarray(scores))):
    bad = int(np.argwhere(~np.isfinite(np.asarray(scores)))[0, 0])
    raise ValueError(f"scores must be finite; score at index {bad} is {np.asarray(scores)[bad]}")
  if classes is not None and jnp.shape(classes) != (n,):
    raise ValueError(f"classes must have shape ({n},) to match boxes, got shape {jnp.shape(classes)}")
  if not _is_traced(iou_threshold) and not 0.0 <= float(iou_threshold) <= 1.0:
    raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold!r}")
  if max_outputs is None:
    return n
  if int(max_outputs) < 0:
    raise ValueError(f"max_outputs must be a non-negative integer, got {max_outputs!r}")
  return int(max_outputs)


def nms(boxes: jax.Array, scores: jax.Array, iou_threshold: float, *,
        max_outputs: Optional[int] = None, score_threshold: Optional[float] = None) -> jax.Array:
  """Greedy non-maximum suppression over `xyxy` boxes; jit-able.

  Boxes are visited by decreasing score; equal scores are visited in index
  order (lower index first, a stable sort). A box is suppressed when its IoU
  with an already kept box is strictly greater than `iou_threshold`. Boxes
  with score <= `score_threshold` (when given) are dropped first.

  Args:
    boxes: `[N, 4]` `xyxy`. Outside jit they are validated (finite, x2 >= x1);
      inside it a malformed box is never kept.
    scores: `[N]`. Outside jit they must be finite; inside it a box with a
      non-finite score is never kept.
    iou_threshold: in [0, 1].
    max_outputs: static output length (default N).
    score_threshold: optional.

  Returns:
    int32 `[max_outputs]` indices of kept boxes by decreasing score, padded with -1.
  """
  k = _check_nms_args(boxes, scores, iou_threshold, max_outputs)
  return _nms_impl(jnp.asarray(boxes), jnp.asarray(scores), None, iou_threshold, k, score_threshold)


def batched_nms(boxes: jax.Array, scores: jax.Array, classes: jax.Array, iou_threshold: float, *,
                max_outputs: Optional[int] = None, score_threshold: Optional[float] = None) -> jax.Array:
  """Per-class NMS: like `nms`, but boxes of different `classes` never suppress each other.

  Returns:
    int32 `[max_outputs]` indices over all classes by decreasing score, padded with -1.
  """
  k = _check_nms_args(boxes, scores, iou_threshold, max_outputs, classes)
  classes = jnp.asarray(classes)
  same = classes[:, None] == classes[None, :]
  return _nms_impl(jnp.asarray(boxes), jnp.asarray(scores), same, iou_threshold, k, score_threshold)



def select_detections(boxes: jax.Array, scores: jax.Array, classes: jax.Array, iou_threshold: float, *,
                      max_outputs: int, score_threshold: float | None = None) -> dict[str, jax.Array]:
  """Per-class NMS, then the kept detections as fixed-size arrays (jit-able).

  Returns:
    `boxes [K, 4]`, `scores [K]`, `classes [K]` int32 and `valid [K]` bool with
    K = max_outputs, by decreasing score; empty slots hold zeros and class -1.
  """
  keep = batched_nms(boxes, scores, classes, iou_threshold, max_outputs=max_outputs, score_threshold=score_threshold)
  valid = keep >= 0
  i = jnp.maximum(keep, 0)
  return {"boxes": jnp.where(valid[:, None], boxes[i], 0.0), "scores": jnp.where(valid, scores[i], 0.0),
          "classes": jnp.where(valid, classes[i], -1).astype(jnp.int32), "valid": valid}