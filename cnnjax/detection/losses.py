"""Losses: classification with localization, landmarks, and YOLOv2.

Each returns `(scalar loss, dict of scalar metrics)` averaged over the batch,
the shape `cnnjax.train.loop.fit` expects from a `loss_fn`.
"""

import jax
import jax.numpy as jnp
import optax

from cnnjax.detection.boxes import box_iou
from cnnjax.detection.decode import decode_boxes
from cnnjax.detection.targets import encode_yolo_targets


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def localization_loss(outputs: dict, has_object: jax.Array, labels: jax.Array,
                      boxes: jax.Array) -> tuple[jax.Array, dict]:
  """The course's loss for y = (p_c, b_x, b_y, b_w, b_h, c_1..c_C).

  Logistic loss on p_c for every image; squared error on the box and softmax
  cross-entropy on the class only where an object is present.

  Args:
    outputs: `objectness` logits `[N]`, `box` `[N, 4]` (normalised cxcywh), `logits` `[N, C]`.
    has_object: `[N]` 0/1.
    labels: `[N]` classes (ignored where no object).
    boxes: `[N, 4]` true normalised cxcywh boxes (ignored where no object).
  """
  present = has_object.astype(jnp.float32)
  obj = optax.sigmoid_binary_cross_entropy(outputs["objectness"], present).mean()
  box = _masked_mean(jnp.sum((outputs["box"] - boxes) ** 2, -1), present)
  cls = _masked_mean(optax.softmax_cross_entropy_with_integer_labels(outputs["logits"], labels), present)
  return obj + box + cls, {"objectness_loss": obj, "box_loss": box, "class_loss": cls}


def landmark_loss(outputs: dict, points: jax.Array, mask: jax.Array) -> tuple[jax.Array, dict]:
  """Squared error on the landmarks that exist, logistic loss on every landmark's presence.

  Args:
    outputs: `points` `[N, K, 2]` (normalised x, y) and `presence` logits `[N, K]`.
    points: `[N, K, 2]` true landmarks.
    mask: `[N, K]` 1 where landmark k exists.
  """
  mask = mask.astype(jnp.float32)
  point = _masked_mean(jnp.sum((outputs["points"] - points) ** 2, -1), mask)
  presence = optax.sigmoid_binary_cross_entropy(outputs["presence"], mask).mean()
  return point + presence, {"landmark_loss": point, "presence_loss": presence}


def yolo_loss(raw: jax.Array, boxes: jax.Array, classes: jax.Array, valid: jax.Array, anchors: jax.Array, *,
              lambda_coord: float = 5.0, lambda_noobj: float = 0.5,
              ignore_iou: float = 0.6) -> tuple[jax.Array, dict]:
  """YOLOv2 loss of raw predictions `[N, S, S, A, 5 + C]` against padded truth boxes.

  For responsible (cell, anchor) pairs: squared error on sigmoid(t_xy) against
  the offset in the cell and on t_wh against log(size / anchor), weighted by
  `lambda_coord`; logistic loss on objectness (target 1); softmax
  cross-entropy on the class. Every other prediction gets a logistic
  no-object loss weighted by `lambda_noobj`, except those whose decoded box
  already overlaps some truth box by IoU > `ignore_iou`. Sums over the grid,
  averaged over images.

  Args:
    raw: model output.
    boxes: `[N, M, 4]` normalised `xyxy` truth boxes, padded.
    classes: `[N, M]` classes.
    valid: `[N, M]` True for real boxes.
    anchors: `[A, 2]` normalised anchor (w, h).
  """
  n, s, _, _, c5 = raw.shape
  valid = valid.astype(bool)
  target = jax.vmap(lambda b, c, v: encode_yolo_targets(b, c, v, anchors, s, c5 - 5))(boxes, classes, valid)
  obj = target[..., 4]
  xy = jnp.sum((jax.nn.sigmoid(raw[..., :2]) - target[..., :2]) ** 2, -1)
  log_wh = jnp.log(jnp.where(obj[..., None] > 0, target[..., 2:4], 1.0))
  wh = jnp.sum((raw[..., 2:4] - log_wh) ** 2, -1)
  coord = lambda_coord * jnp.sum(obj * (xy + wh)) / n
  bce = optax.sigmoid_binary_cross_entropy(raw[..., 4], obj)
  pred = decode_boxes(jax.lax.stop_gradient(raw), anchors).reshape(n, -1, 4)
  best_iou = jnp.max(jnp.where(valid[:, None, :], box_iou(pred, boxes), 0.0), axis=-1).reshape(obj.shape)
  noobj_mask = (1.0 - obj) * (best_iou <= ignore_iou)
  objectness = jnp.sum(obj * bce) / n
  noobj = lambda_noobj * jnp.sum(noobj_mask * bce) / n
  cls = jnp.sum(obj * optax.softmax_cross_entropy(raw[..., 5:], target[..., 5:])) / n
  loss = coord + objectness + noobj + cls
  return loss, {"coord_loss": coord, "obj_loss": objectness, "noobj_loss": noobj, "class_loss": cls}
