"""Faster R-CNN's pieces against NumPy oracles, and a few training steps on a tiny batch."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnnjax.detection import faster_rcnn as F
from cnnjax.detection import proposals as P
from cnnjax.detection import rcnn

ANCHORS = ((0.25, 0.25), (0.5, 0.3))
TRUTH = np.array([[[0.1, 0.1, 0.4, 0.45], [0.5, 0.55, 0.9, 0.85], [0, 0, 0, 0]]] * 2, np.float32)
CLASSES = np.array([[1, 0, 0]] * 2, np.int32)
VALID = np.array([[True, True, False]] * 2)


def tiny_model(**kw):
  return F.FasterRCNN(2, ANCHORS, widths=(4, 8), hidden=8, rpn_hidden=8, pre_nms_topk=40, num_proposals=12,
                      rpn_batch=16, num_train_rois=8, **kw)


def inputs(train=True):
  pixels = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
  return {"pixels": pixels, "boxes": TRUTH, "classes": CLASSES, "valid": VALID} if train else {"pixels": pixels}


def np_iou(a, b):
  lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
  inter = np.prod(np.clip(rb - lt, 0, None), -1)
  area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
  return inter / (area(a)[:, None] + area(b)[None] - inter)


def test_output_shapes_by_eval_shape():
  model = tiny_model()
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), inputs(False)))
  k = 8 * 8 * len(ANCHORS)  # two 2x2 pools: an 8x8 feature map
  out = jax.eval_shape(lambda v: model.apply(v, inputs(False)), variables)
  assert out["rpn_logits"].shape == (2, k) and out["rpn_deltas"].shape == (2, k, 4)
  assert out["rois"].shape == (2, 12, 4) and out["roi_valid"].shape == (2, 12)
  assert out["logits"].shape == (2, 12, 3) and out["deltas"].shape == (2, 12, 4)
  train = jax.eval_shape(lambda v: model.apply(v, inputs(), train=True, rngs={"dropout": jax.random.key(1)}),
                         variables)
  assert train["rpn_labels"].shape == (2, k) and train["rpn_mask"].shape == (2, k)
  assert train["logits"].shape[1] == train["roi_labels"].shape[1] == 8 + 2  # num_train_rois + its fg share


def test_anchor_grid_and_labels_match_numpy_iou():
  anchors = np.asarray(F.anchor_boxes(jnp.array(ANCHORS), 4, 4))
  assert anchors.shape == (32, 4)
  np.testing.assert_allclose((anchors[:, :2] + anchors[:, 2:])[0] / 2, [0.125, 0.125])
  np.testing.assert_allclose(anchors[1, 2:] - anchors[1, :2], ANCHORS[1])
  labels, deltas = jax.jit(lambda a, b, v: F.label_anchors(a, b, v, fg_iou=0.6, bg_iou=0.3))(anchors, TRUTH[0],
                                                                                              VALID[0])
  iou = np_iou(anchors, TRUTH[0][:2])
  best = iou.max(1)
  expect = np.where(best >= 0.6, 1, np.where(best < 0.3, 0, -1))
  expect[np.isclose(iou, iou.max(0), rtol=1e-5).any(1)] = 1  # each truth box's best anchor(s), ties included
  np.testing.assert_array_equal(labels, expect)
  pos = expect == 1
  np.testing.assert_allclose(deltas[pos], P.encode_deltas(anchors[pos], TRUTH[0][iou.argmax(1)][pos]), atol=1e-5)
  assert np.all(np.asarray(deltas)[~pos] == 0)


def test_label_proposals_jit_matches_host():
  rng = np.random.default_rng(0)
  xy = rng.uniform(0, 0.6, (20, 2))
  props = np.concatenate([xy, xy + rng.uniform(0.05, 0.4, (20, 2))], 1).astype(np.float32)
  host = rcnn.label_proposals(props, TRUTH[0][:2], CLASSES[0][:2])
  jitted = jax.jit(lambda p, b, c, v: rcnn.label_proposals(p, b, c, valid=v))(props, TRUTH[0], CLASSES[0], VALID[0])
  for h, j in zip(host, jitted):
    np.testing.assert_allclose(h, j, atol=1e-5)


def test_proposals_are_valid_boxes_by_decreasing_score():
  anchors = F.anchor_boxes(jnp.array(ANCHORS), 8, 8)
  logits = jax.random.normal(jax.random.key(2), (anchors.shape[0],))
  deltas = 0.3 * jax.random.normal(jax.random.key(3), (anchors.shape[0], 4))
  boxes, scores, valid = jax.jit(lambda l, d: F.propose(anchors, l, d, pre_nms_topk=60, num=30,
                                                        iou_threshold=0.5))(logits, deltas)
  boxes, scores, valid = map(np.asarray, (boxes, scores, valid))
  assert valid.sum() > 5 and np.all(valid[:valid.sum()])  # the kept ones first
  b, s = boxes[valid], scores[valid]
  assert np.all((b >= 0) & (b <= 1)) and np.all(b[:, 2:] > b[:, :2])
  assert np.all(np.diff(s) <= 0) and np.all(np.isin(s, np.asarray(logits)))
  iou = np_iou(b, b)
  assert np.all(iou[np.triu_indices(len(b), 1)] <= 0.5 + 1e-6)  # NMS


def test_sample_respects_counts():
  labels = jnp.array([2, 0, 0, -1, 1, 0, 3, 0, 0, 0])
  idx, ok = F.sample(jax.random.key(0), labels, 4, 0.5)
  chosen = np.asarray(labels)[np.asarray(idx)[np.asarray(ok)]]
  assert len(chosen) == 4 and (chosen > 0).sum() == 2 and (chosen == 0).sum() == 2
  assert len(set(np.asarray(idx)[np.asarray(ok)].tolist())) == 4


def test_roi_max_pool_gradient_goes_to_each_bins_maximum():
  rng = np.random.default_rng(1)
  features = rng.normal(size=(6, 7, 2)).astype(np.float32)
  boxes = np.array([[0, 0, 1, 1], [0.1, 0.2, 0.6, 0.9]], np.float32)
  weights = rng.normal(size=(2, 2, 2, 2)).astype(np.float32)
  grad = jax.grad(lambda f: jnp.sum(weights * P.roi_max_pool(f, boxes, (2, 2))))(features)
  expect = np.zeros_like(features)
  r0, r1 = map(np.asarray, P._bin_ranges(boxes, 6, 2, axis=1))
  c0, c1 = map(np.asarray, P._bin_ranges(boxes, 7, 2, axis=0))
  for r in range(2):
    for i in range(2):
      for j in range(2):
        for c in range(2):
          block = features[r0[r, i]:r1[r, i], c0[r, j]:c1[r, j], c]
          y, x = np.unravel_index(np.argmax(block), block.shape)
          expect[r0[r, i] + y, c0[r, j] + x, c] += weights[r, i, j, c]
  np.testing.assert_allclose(grad, expect, atol=1e-6)


def test_loss_finite_and_decreasing():
  model = tiny_model()
  x = inputs()
  params = model.init(jax.random.key(0), inputs(False))["params"]
  tx = optax.adam(3e-3)
  opt = tx.init(params)

  @jax.jit
  def step(params, opt):
    def loss(p):  # the same sampling key every step, so the losses compare
      return F.faster_rcnn_loss(model.apply({"params": p}, x, train=True, rngs={"dropout": jax.random.key(1)}))
    (value, metrics), grads = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, value, metrics

  losses = []
  for _ in range(8):
    params, opt, value, metrics = step(params, opt)
    losses.append(float(value))
    assert all(np.isfinite(float(v)) for v in metrics.values())
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
