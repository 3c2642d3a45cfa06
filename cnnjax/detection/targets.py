"""YOLO target encoding: each object to the cell holding its midpoint and its best-matching anchor."""

import jax
import jax.numpy as jnp

from cnnjax.detection.boxes import box_convert, wh_iou


def encode_yolo_targets(boxes: jax.Array, classes: jax.Array, valid: jax.Array, anchors: jax.Array,
                        grid_size: int, num_classes: int) -> jax.Array:
  """Encodes one image's objects as a YOLO target grid; jit-able.

  Each valid object goes to the grid cell holding its box midpoint and to the
  anchor with the highest shape-only IoU (boxes aligned at a common centre).
  When two objects land on the same (cell, anchor), the later one in the list wins.

  Args:
    boxes: `[M, 4]` normalised `xyxy` boxes (padding rows allowed).
    classes: `[M]` integer classes.
    valid: `[M]` bool, False for padding rows.
    anchors: `[A, 2]` anchor (w, h), normalised to the image size.
    grid_size: S, the number of cells along each side.
    num_classes: C.

  Returns:
    `[S, S, A, 5 + C]`: (x, y) of the midpoint relative to its cell in [0, 1],
    (w, h) relative to the anchor (w / anchor_w, h / anchor_h), objectness 1,
    then the one-hot class; zeros where no object is assigned. Rows are y, columns x.
  """
  anchors = jnp.asarray(anchors, jnp.float32)
  s, a = grid_size, anchors.shape[0]
  cx, cy, w, h = jnp.moveaxis(box_convert(boxes, "xyxy", "cxcywh"), -1, 0)
  col = jnp.clip(jnp.floor(cx * s), 0, s - 1).astype(jnp.int32)
  row = jnp.clip(jnp.floor(cy * s), 0, s - 1).astype(jnp.int32)
  best = jnp.argmax(wh_iou(jnp.stack([w, h], -1), anchors), axis=1).astype(jnp.int32)
  slot = (row * s + col) * a + best
  m = boxes.shape[0]
  later_same = (slot[None, :] == slot[:, None]) & valid[None, :] & (jnp.arange(m)[None, :] > jnp.arange(m)[:, None])
  keep = valid & ~jnp.any(later_same, axis=1)
  slot = jnp.where(keep, slot, s * s * a)  # out of range: dropped by the scatter
  rows = jnp.concatenate([
      jnp.stack([cx * s - col, cy * s - row, w / anchors[best, 0], h / anchors[best, 1], jnp.ones_like(cx)], -1),
      jax.nn.one_hot(classes, num_classes),
  ], axis=-1)
  target = jnp.zeros((s * s * a, 5 + num_classes), jnp.float32).at[slot].set(rows, mode="drop")
  return target.reshape(s, s, a, 5 + num_classes)
