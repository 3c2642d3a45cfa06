"""YOLOv2 decoding and jit-able inference: decode, drop low scores, per-class NMS, top detections."""

import jax
import jax.numpy as jnp

from cnnjax.detection.boxes import select_detections

# exp(tw) is clipped so an untrained head cannot produce infinite boxes.
_MAX_LOG_SCALE = 4.0


def decode_boxes(raw: jax.Array, anchors: jax.Array) -> jax.Array:
  """Raw `[..., S, S, A, 5 + C]` predictions -> normalised `xyxy` boxes `[..., S, S, A, 4]`.

  Midpoint = (cell index + sigmoid(t_xy)) / S; size = anchor * exp(t_wh).
  """
  s_y, s_x = raw.shape[-4], raw.shape[-3]
  col = jnp.arange(s_x, dtype=raw.dtype)[None, :, None]
  row = jnp.arange(s_y, dtype=raw.dtype)[:, None, None]
  cx = (col + jax.nn.sigmoid(raw[..., 0])) / s_x
  cy = (row + jax.nn.sigmoid(raw[..., 1])) / s_y
  wh = jnp.asarray(anchors) * jnp.exp(jnp.minimum(raw[..., 2:4], _MAX_LOG_SCALE))
  return jnp.stack([cx - wh[..., 0] / 2, cy - wh[..., 1] / 2, cx + wh[..., 0] / 2, cy + wh[..., 1] / 2], -1)


def decode(raw: jax.Array, anchors: jax.Array) -> dict[str, jax.Array]:
  """Boxes, objectness probability and class probabilities of every (cell, anchor)."""
  return {
      "boxes": decode_boxes(raw, anchors),
      "objectness": jax.nn.sigmoid(raw[..., 4]),
      "class_probs": jax.nn.softmax(raw[..., 5:], axis=-1),
  }


def detect(raw: jax.Array, anchors: jax.Array, *, score_threshold: float = 0.05, iou_threshold: float = 0.5,
           max_detections: int = 20, pre_nms_topk: int = 100) -> dict[str, jax.Array]:
  """Detections of one image from raw `[S, S, A, 5 + C]` predictions; fixed-size, jit-able.

  Score = objectness x best class probability. The `pre_nms_topk` best boxes
  with score > `score_threshold` go through per-class NMS; the best
  `max_detections` survive.

  Returns:
    `boxes [K, 4]` (normalised `xyxy`, clipped to the image), `scores [K]`,
    `classes [K]` int32 and `valid [K]` bool, K = max_detections, by decreasing score.
  """
  d = decode(raw, anchors)
  boxes = jnp.clip(d["boxes"].reshape(-1, 4), 0.0, 1.0)
  probs = d["class_probs"].reshape(boxes.shape[0], -1)
  classes = jnp.argmax(probs, axis=-1).astype(jnp.int32)
  scores = d["objectness"].reshape(-1) * jnp.max(probs, axis=-1)
  k = min(pre_nms_topk, boxes.shape[0])
  top_scores, top = jax.lax.top_k(scores, k)
  return select_detections(boxes[top], top_scores, classes[top], iou_threshold,
                           max_outputs=max_detections, score_threshold=score_threshold)


def detect_batch(raw: jax.Array, anchors: jax.Array, **kwargs) -> dict[str, jax.Array]:
  """`detect` over a batch `[N, S, S, A, 5 + C]`; outputs gain a leading N."""
  return jax.vmap(lambda r: detect(r, anchors, **kwargs))(raw)
