"""R-CNN and Fast R-CNN: networks, proposal labelling, loss and fixed-size inference.

R-CNN warps every proposal to a fixed size and classifies each crop with a
small CNN; Fast R-CNN runs the conv trunk once per image and RoI-max-pools each
proposal from the feature map. Both predict C + 1 class logits (0 =
background) and class-agnostic box deltas (`proposals.encode_deltas`).
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnnjax.detection.boxes import select_detections
from cnnjax.detection.proposals import crop_and_resize, decode_deltas, encode_deltas, roi_max_pool
from cnnjax.models.layers import Conv, max_pool


class Trunk(nn.Module):
  """3x3 conv + ReLU layers, the first `pools` each followed by a 2x2 max pool: the R-CNN family's feature maps."""

  widths: Sequence[int]
  pools: int  # 2x2 max pools after the first `pools` conv layers
  dtype: Any

  @nn.compact
  def __call__(self, x):
    for i, w in enumerate(self.widths):
      x = nn.relu(Conv(w, (3, 3), padding="SAME", dtype=self.dtype)(x))
      if i < self.pools:
        x = max_pool(x, (2, 2), strides=(2, 2))
    return x


class Head(nn.Module):
  """One hidden dense layer, then C + 1 class logits (0 = background) and class-agnostic box deltas per region."""

  num_classes: int
  hidden: int
  dtype: Any

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x))
    return {"logits": nn.Dense(self.num_classes + 1, dtype=self.dtype)(x).astype(jnp.float32),
            "deltas": nn.Dense(4, dtype=self.dtype)(x).astype(jnp.float32)}


class RCNN(nn.Module):
  """Classifies warped proposals `(N, size, size, 3)` -> `logits (N, C + 1)`, `deltas (N, 4)`."""
  num_classes: int
  widths: Sequence[int] = (16, 32, 64)
  hidden: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, crops: jnp.ndarray, train: bool = False) -> dict:
    x = Trunk(self.widths, len(self.widths), self.dtype)(crops.astype(self.dtype))
    return Head(self.num_classes, self.hidden, self.dtype)(x.reshape(x.shape[0], -1))


class FastRCNN(nn.Module):
  """One trunk pass per image, RoI max pooling, then the head.

  Input: `{'pixels': (N, H, W, 3), 'rois': (N, R, 4) normalised xyxy}`;
  output: `logits (N, R, C + 1)`, `deltas (N, R, 4)`.
  """
  num_classes: int
  widths: Sequence[int] = (16, 32, 64)
  pools: int = 2
  pool_size: int = 4
  hidden: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: dict, train: bool = False) -> dict:
    features = Trunk(self.widths, self.pools, self.dtype)(inputs["pixels"].astype(self.dtype))
    pooled = jax.vmap(lambda f, r: roi_max_pool(f, r, (self.pool_size, self.pool_size)))(features, inputs["rois"])
    n, r = pooled.shape[:2]
    out = Head(self.num_classes, self.hidden, self.dtype)(pooled.reshape(n * r, -1))
    return {k: v.reshape(n, r, -1) for k, v in out.items()}


def label_proposals(proposals: np.ndarray, boxes: np.ndarray, classes: np.ndarray, *, fg_iou: float = 0.5,
                    bg_iou: float = 0.3, valid=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Labels proposals by their best IoU with the truth: class + 1 at >= fg_iou, 0 below bg_iou, -1 between.

  NumPy in, NumPy out (host side, any number of boxes); JAX arrays in (jit-able, fixed shapes), JAX out, where
  `valid [M]` marks the real rows of padded `boxes`.

  Returns:
    `(labels [K], delta targets [K, 4] to the best-matching box, best IoU [K])`.
  """
  xp = jnp if any(isinstance(a, jax.Array) for a in (proposals, boxes, valid)) else np
  if xp is np:
    if len(boxes) == 0:
      return np.zeros(len(proposals), np.int32), np.zeros((len(proposals), 4), np.float32), np.zeros(len(proposals))
    # NumPy, not box_iou: called per image with varying shapes, where jnp would recompile each time.
    proposals, boxes = np.asarray(proposals, np.float64), np.asarray(boxes, np.float64)
  lt = xp.maximum(proposals[:, None, :2], boxes[None, :, :2])
  rb = xp.minimum(proposals[:, None, 2:], boxes[None, :, 2:])
  inter = xp.prod(xp.clip(rb - lt, 0, None), -1)
  area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
  union = area(proposals)[:, None] + area(boxes)[None] - inter
  iou = inter / xp.where(union > 0, union, 1.0)
  if valid is not None:
    iou = xp.where(valid[None], iou, 0.0)
  best, arg = iou.max(1), iou.argmax(1)
  labels = xp.where(best >= fg_iou, xp.asarray(classes)[arg] + 1, xp.where(best < bg_iou, 0, -1)).astype(xp.int32)
  deltas = encode_deltas(proposals, boxes[arg]).astype(xp.float32)
  return labels, xp.where(labels[:, None] > 0, deltas, 0.0).astype(xp.float32), best


def rcnn_loss(outputs: dict, labels: jax.Array, deltas: jax.Array, valid: jax.Array, *,
              box_weight: float = 1.0) -> tuple[jax.Array, dict]:
  """Cross-entropy over C + 1 classes for valid proposals, plus smooth-L1 on deltas for foreground ones."""
  logits, pred = outputs["logits"].reshape(-1, outputs["logits"].shape[-1]), outputs["deltas"].reshape(-1, 4)
  labels, deltas, valid = labels.reshape(-1), deltas.reshape(-1, 4), valid.reshape(-1).astype(jnp.float32)
  fg = valid * (labels > 0)
  ce = jnp.sum(valid * optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(labels, 0)))
  ce = ce / jnp.maximum(valid.sum(), 1.0)
  box = jnp.sum(fg[:, None] * optax.huber_loss(pred, deltas, delta=1.0)) / jnp.maximum(fg.sum(), 1.0)
  accuracy = jnp.sum(valid * (jnp.argmax(logits, -1) == labels)) / jnp.maximum(valid.sum(), 1.0)
  return ce + box_weight * box, {"class_loss": ce, "box_loss": box, "accuracy": accuracy}


def warp_batch(images: jax.Array, rois: jax.Array, size: int) -> jax.Array:
  """R-CNN input: every proposal of every image warped to `(size, size)`: `(N * R, size, size, 3)`."""
  crops = jax.vmap(lambda im, r: crop_and_resize(im, r, size))(images, rois)
  return crops.reshape(-1, size, size, images.shape[-1])


def detections_from_outputs(outputs: dict, rois: jax.Array, valid: jax.Array, *, score_threshold: float,
                            iou_threshold: float, max_detections: int) -> dict:
  """Refined, per-class-NMSed detections of one image from its R proposals' logits and deltas."""
  probs = jax.nn.softmax(outputs["logits"], -1)[:, 1:]
  classes = jnp.argmax(probs, -1).astype(jnp.int32)
  scores = jnp.where(valid, jnp.max(probs, -1), -1.0)
  boxes = jnp.clip(decode_deltas(rois, outputs["deltas"]), 0.0, 1.0)
  return select_detections(boxes, scores, classes, iou_threshold, max_outputs=max_detections,
                           score_threshold=score_threshold)
