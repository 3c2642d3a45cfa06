"""Faster R-CNN: a region proposal network over anchors in front of Fast R-CNN's RoI head, one network.

The shared trunk's feature map feeds the RPN (a 3x3 conv, then per position and
anchor a 1x1 objectness logit and four box deltas against the anchor). The
proposals are the decoded anchors of highest objectness after NMS; RoI max
pooling of each proposal feeds `rcnn`'s head. Training is approximate joint
training (Ren et al. 2015): the proposal coordinates carry no gradient. Every
shape is fixed (proposals padded with a valid mask), so training and inference jit.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from cnnjax.detection.boxes import box_iou, nms
from cnnjax.detection.proposals import decode_deltas, roi_max_pool
from cnnjax.detection.rcnn import Head, Trunk, label_proposals, rcnn_loss
from cnnjax.models.layers import Conv


def anchor_boxes(anchors: jax.Array, height: int, width: int) -> jax.Array:
  """Normalised `xyxy` anchors `[height * width * A, 4]` centred on each feature-map cell, rows then columns."""
  anchors = jnp.asarray(anchors, jnp.float32)
  cy, cx = jnp.meshgrid((jnp.arange(height) + 0.5) / height, (jnp.arange(width) + 0.5) / width, indexing="ij")
  centre = jnp.stack([cx, cy], -1)[:, :, None, :]  # [H, W, 1, 2]
  half = anchors[None, None] / 2
  return jnp.concatenate([centre - half, centre + half], -1).reshape(-1, 4)


def sample(key: jax.Array, labels: jax.Array, num: int, fg_fraction: float) -> tuple[jax.Array, jax.Array]:
  """A random minibatch of labelled boxes: at most `num * fg_fraction` with label > 0, background (0) for the rest.

  Returns:
    `(indices, mask)` of static length `int(num * fg_fraction) + num`; at most `num` are True.
  """
  u = jax.random.uniform(key, labels.shape)
  fg_scores, fg = jax.lax.top_k(jnp.where(labels > 0, u, -1.0), int(num * fg_fraction))
  bg_scores, bg = jax.lax.top_k(jnp.where(labels == 0, u, -1.0), num)
  fg_ok = fg_scores >= 0
  bg_ok = (bg_scores >= 0) & (jnp.arange(num) < num - fg_ok.sum())
  return jnp.concatenate([fg, bg]), jnp.concatenate([fg_ok, bg_ok])


def label_anchors(anchors: jax.Array, boxes: jax.Array, valid: jax.Array, *, fg_iou: float,
                  bg_iou: float) -> tuple[jax.Array, jax.Array]:
  """RPN targets of one image: 1 for an anchor at IoU >= fg_iou with a truth box or the best anchor of a truth
  box, 0 below bg_iou, -1 (ignored) between; deltas to the anchor's best truth box.

  Returns:
    `(labels [K], delta targets [K, 4])`.
  """
  classes = jnp.zeros(boxes.shape[0], jnp.int32)
  labels, _, _ = label_proposals(anchors, boxes, classes, fg_iou=fg_iou, bg_iou=bg_iou, valid=valid)
  _, deltas, _ = label_proposals(anchors, boxes, classes, fg_iou=0.0, bg_iou=0.0, valid=valid)  # every anchor's
  iou = jnp.where(valid[None], box_iou(anchors, boxes), 0.0)
  best_of_box = (iou >= iou.max(0, keepdims=True)) & (iou > 0)
  labels = jnp.where(best_of_box.any(1), 1, labels)
  return labels, jnp.where(labels[:, None] > 0, deltas, 0.0)


def propose(anchors: jax.Array, logits: jax.Array, deltas: jax.Array, *, pre_nms_topk: int, num: int,
            iou_threshold: float, min_size: float = 1e-3) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One image's proposals: the `pre_nms_topk` anchors of highest objectness, decoded, clipped to the image,
  those narrower than `min_size` dropped, NMS at `iou_threshold`.

  Returns:
    `(boxes [num, 4], scores [num], valid [num])` by decreasing score, padded with zero boxes.
  """
  top_scores, top = jax.lax.top_k(logits, min(pre_nms_topk, logits.shape[0]))
  boxes = jnp.clip(decode_deltas(anchors[top], deltas[top]), 0.0, 1.0)
  big = jnp.all(boxes[:, 2:] - boxes[:, :2] >= min_size, -1)
  keep = nms(boxes, jnp.where(big, top_scores, -jnp.inf), iou_threshold, max_outputs=num)
  valid = keep >= 0
  i = jnp.maximum(keep, 0)
  return jnp.where(valid[:, None], boxes[i], 0.0), jnp.where(valid, top_scores[i], -jnp.inf), valid


class FasterRCNN(nn.Module):
  """Trunk, RPN, proposals, RoI max pooling and `rcnn`'s head in one module.

  Input: `{'pixels': (N, H, W, 3)}`, in training also the padded truth `boxes (N, M, 4)`, `classes (N, M)` and
  `valid (N, M)` (sampling draws from the 'dropout' rng). Output: the RPN's `rpn_logits (N, K)` and
  `rpn_deltas (N, K, 4)` over the K anchors, the head's `logits (N, R, C + 1)` and `deltas (N, R, 4)` for the
  `rois (N, R, 4)` with `roi_valid (N, R)`; in training also the targets `rpn_labels`, `rpn_targets`,
  `rpn_mask` (the sampled anchors), `roi_labels` and `roi_targets` that `faster_rcnn_loss` reads.
  """
  num_classes: int
  anchors: Sequence[Sequence[float]]  # (w, h) of each anchor, normalised
  widths: Sequence[int] = (16, 32, 64)
  pools: int = 2
  pool_size: int = 4
  hidden: int = 128
  rpn_hidden: int = 64
  pre_nms_topk: int = 300
  num_proposals: int = 64
  proposal_iou: float = 0.7
  rpn_batch: int = 64
  rpn_fg_iou: float = 0.7
  rpn_bg_iou: float = 0.3
  num_train_rois: int = 32
  fg_fraction: float = 0.25
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: dict, train: bool = False) -> dict:
    features = Trunk(self.widths, self.pools, self.dtype)(inputs["pixels"].astype(self.dtype))
    n, h, w, _ = features.shape
    a = len(self.anchors)
    x = nn.relu(Conv(self.rpn_hidden, (3, 3), padding="SAME", dtype=self.dtype, name="rpn_conv")(features))
    rpn_logits = Conv(a, (1, 1), dtype=self.dtype, name="rpn_objectness")(x).reshape(n, -1).astype(jnp.float32)
    rpn_deltas = Conv(4 * a, (1, 1), dtype=self.dtype, name="rpn_deltas")(x).reshape(n, -1, 4).astype(jnp.float32)
    anchors = anchor_boxes(self.anchors, h, w)
    rois, _, roi_valid = jax.vmap(lambda l, d: propose(
        anchors, l, d, pre_nms_topk=self.pre_nms_topk, num=self.num_proposals, iou_threshold=self.proposal_iou))(
            jax.lax.stop_gradient(rpn_logits), jax.lax.stop_gradient(rpn_deltas))
    out = {"rpn_logits": rpn_logits, "rpn_deltas": rpn_deltas}
    if train:
      out.update(self._targets(anchors, rois, roi_valid, inputs))
      rois, roi_valid = out.pop("rois"), out.pop("roi_valid")
    pooled = jax.vmap(lambda f, r: roi_max_pool(f, r, (self.pool_size, self.pool_size)))(features, rois)
    r = rois.shape[1]
    head = Head(self.num_classes, self.hidden, self.dtype)(pooled.reshape(n * r, -1))
    return {**out, **{k: v.reshape(n, r, -1) for k, v in head.items()}, "rois": rois, "roi_valid": roi_valid}

  def _targets(self, anchors, proposals, proposal_valid, inputs) -> dict:
    """The RPN's labels and sampled anchors; the head's RoIs (proposals and truth boxes, sampled) and labels."""
    boxes, classes, valid = inputs["boxes"], inputs["classes"], inputs["valid"].astype(bool)
    rpn_keys, roi_keys = (jax.random.split(k, boxes.shape[0]) for k in jax.random.split(self.make_rng("dropout")))

    def one(rpn_key, roi_key, props, props_valid, b, c, v):
      rpn_labels, rpn_targets = label_anchors(anchors, b, v, fg_iou=self.rpn_fg_iou, bg_iou=self.rpn_bg_iou)
      idx, ok = sample(rpn_key, rpn_labels, self.rpn_batch, 0.5)
      rpn_mask = jnp.zeros(anchors.shape[0]).at[idx].max(ok.astype(jnp.float32))  # indices may repeat
      cand = jnp.concatenate([props, b])  # the truth boxes are proposals too, as in Faster R-CNN
      labels, deltas, _ = label_proposals(cand, b, c, valid=v)
      labels = jnp.where(jnp.concatenate([props_valid, v]), labels, -1)
      idx, ok = sample(roi_key, labels, self.num_train_rois, self.fg_fraction)
      return {"rpn_labels": rpn_labels, "rpn_targets": rpn_targets, "rpn_mask": rpn_mask, "rois": cand[idx],
              "roi_valid": ok, "roi_labels": labels[idx], "roi_targets": deltas[idx]}

    return jax.vmap(one)(rpn_keys, roi_keys, proposals, proposal_valid, boxes, classes, valid)


def faster_rcnn_loss(outputs: dict, *, rpn_weight: float = 1.0) -> tuple[jax.Array, dict]:
  """RPN loss (logistic objectness over the sampled anchors, smooth-L1 on the positives' deltas) plus
  `rcnn_loss` of the head on the sampled RoIs."""
  mask = outputs["rpn_mask"].astype(jnp.float32)
  pos = mask * (outputs["rpn_labels"] > 0)
  objectness = jnp.sum(mask * optax.sigmoid_binary_cross_entropy(outputs["rpn_logits"], pos)) / jnp.maximum(
      mask.sum(), 1.0)
  box = jnp.sum(pos[..., None] * optax.huber_loss(outputs["rpn_deltas"], outputs["rpn_targets"], delta=1.0))
  box = box / jnp.maximum(pos.sum(), 1.0)
  head, metrics = rcnn_loss(outputs, outputs["roi_labels"], outputs["roi_targets"], outputs["roi_valid"])
  rpn = objectness + box
  return head + rpn_weight * rpn, {**metrics, "rpn_objectness_loss": objectness, "rpn_box_loss": box}
