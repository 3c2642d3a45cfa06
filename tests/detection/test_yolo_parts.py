"""Anchors, YOLO targets, decoding, inference and loss against NumPy references written here."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import detection as D
from cnnjax import models


def np_wh_iou(wh, anchors):
  inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
  return inter / (wh.prod(1)[:, None] + anchors.prod(1)[None] - inter)


def np_targets(boxes, classes, valid, anchors, s, c):
  out = np.zeros((s, s, len(anchors), 5 + c))
  for b, k, v in zip(boxes, classes, valid):
    if not v:
      continue
    cx, cy, w, h = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]
    col, row = min(int(cx * s), s - 1), min(int(cy * s), s - 1)
    a = int(np.argmax(np_wh_iou(np.array([[w, h]]), anchors)[0]))
    out[row, col, a] = 0
    out[row, col, a, :5] = [cx * s - col, cy * s - row, w / anchors[a, 0], h / anchors[a, 1], 1]
    out[row, col, a, 5 + k] = 1
  return out


def sigmoid(x):
  return 1 / (1 + np.exp(-x))


def np_decode(raw, anchors):
  s = raw.shape[0]
  out = np.zeros(raw.shape[:3] + (4,))
  for r in range(s):
    for col in range(s):
      for a in range(raw.shape[2]):
        t = raw[r, col, a]
        cx, cy = (col + sigmoid(t[0])) / s, (r + sigmoid(t[1])) / s
        w, h = anchors[a] * np.exp(t[2:4])
        out[r, col, a] = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
  return out


def np_iou(p, q):
  iw = max(0, min(p[2], q[2]) - max(p[0], q[0]))
  ih = max(0, min(p[3], q[3]) - max(p[1], q[1]))
  inter = iw * ih
  return inter / ((p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter)


def np_yolo_loss(raw, boxes, classes, valid, anchors, lc, ln, ignore):
  n, s, _, _, c5 = raw.shape
  total = 0.0
  bce = lambda z, y: max(z, 0) - z * y + np.log1p(np.exp(-abs(z)))
  for i in range(n):
    t = np_targets(boxes[i], classes[i], valid[i], anchors, s, c5 - 5)
    pred = np_decode(raw[i], anchors)
    for idx in np.ndindex(t.shape[:3]):
      z = raw[i][idx]
      if t[idx][4] == 1:
        xy = np.sum((sigmoid(z[:2]) - t[idx][:2]) ** 2)
        wh = np.sum((z[2:4] - np.log(t[idx][2:4])) ** 2)
        logp = z[5:] - np.log(np.sum(np.exp(z[5:])))
        total += lc * (xy + wh) + bce(z[4], 1) - np.sum(t[idx][5:] * logp)
      else:
        best = max([np_iou(pred[idx], b) for b, v in zip(boxes[i], valid[i]) if v] + [0])
        if best <= ignore:
          total += ln * bce(z[4], 0)
  return total / n


def random_objects(rng, n, m):
  xy = rng.uniform(0, 0.7, (n, m, 2))
  wh = rng.uniform(0.05, 0.3, (n, m, 2))
  boxes = np.concatenate([xy, xy + wh], -1).astype(np.float32)
  classes = rng.integers(0, 2, (n, m)).astype(np.int32)
  valid = rng.uniform(size=(n, m)) < 0.8
  return boxes, classes, valid


def test_kmeans_anchors_finds_clusters_and_reports_mean_iou():
  rng = np.random.default_rng(0)
  centres = np.array([[0.1, 0.1], [0.3, 0.15], [0.5, 0.6]])
  wh = np.concatenate([c * rng.uniform(0.95, 1.05, (50, 2)) for c in centres])
  anchors, mean_iou = D.kmeans_anchors(wh, 3, seed=0)
  np.testing.assert_allclose(anchors, centres, rtol=0.05)
  np.testing.assert_allclose(mean_iou, np_wh_iou(wh, anchors).max(1).mean(), rtol=1e-5)
  curve = D.mean_iou_vs_k(wh, [1, 2, 3])
  assert curve[1] < curve[3] and curve[3] > 0.9
  assert D.kmeans_anchors(wh[:4], 4)[1] == pytest.approx(1.0)
  with pytest.raises(ValueError, match="k must be"):
    D.kmeans_anchors(wh, 0)
  with pytest.raises(ValueError, match="positive"):
    D.kmeans_anchors(-wh, 2)


def test_targets_match_reference_including_padding_and_collisions():
  rng = np.random.default_rng(1)
  anchors = np.array([[0.1, 0.1], [0.2, 0.3]], np.float32)
  boxes, classes, valid = random_objects(rng, 4, 5)
  # Two objects in the same cell and anchor: the later one wins (the reference overwrites too).
  boxes[0, 1] = boxes[0, 0] + 0.01
  valid[0, :2] = True
  encode = jax.jit(jax.vmap(lambda b, c, v: D.encode_yolo_targets(b, c, v, anchors, 4, 2)))
  got = encode(boxes, classes, valid)
  for i in range(4):
    np.testing.assert_allclose(got[i], np_targets(boxes[i], classes[i], valid[i], anchors, 4, 2), atol=1e-5)


def test_decode_and_detect_match_reference():
  rng = np.random.default_rng(2)
  anchors = np.array([[0.2, 0.2], [0.4, 0.3]], np.float32)
  raw = rng.normal(0, 1, (3, 3, 2, 7)).astype(np.float32)
  np.testing.assert_allclose(D.decode_boxes(raw, anchors), np_decode(raw, anchors), rtol=1e-5, atol=1e-6)
  det = jax.jit(lambda r: D.detect(r, anchors, score_threshold=0.05, iou_threshold=0.5, max_detections=5))(raw)
  # Reference: score = objectness x best class prob, greedy per-class NMS.
  probs = np.exp(raw[..., 5:]) / np.exp(raw[..., 5:]).sum(-1, keepdims=True)
  scores = (sigmoid(raw[..., 4]) * probs.max(-1)).reshape(-1)
  classes = probs.argmax(-1).reshape(-1)
  boxes = np.clip(np_decode(raw, anchors).reshape(-1, 4), 0, 1)
  keep = []
  for i in sorted(range(len(scores)), key=lambda i: (-scores[i], i)):
    if scores[i] > 0.05 and all(classes[j] != classes[i] or np_iou(boxes[i], boxes[j]) <= 0.5 for j in keep):
      keep.append(i)
  keep = keep[:5]
  n = len(keep)
  assert np.asarray(det["valid"]).tolist() == [True] * n + [False] * (5 - n)
  np.testing.assert_allclose(det["scores"][:n], scores[keep], rtol=1e-5)
  np.testing.assert_allclose(det["boxes"][:n], boxes[keep], rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(det["classes"][:n], classes[keep])
  assert np.all(np.asarray(det["classes"])[n:] == -1)


def test_yolo_loss_matches_reference_and_ignores_good_predictions():
  rng = np.random.default_rng(3)
  anchors = np.array([[0.1, 0.15], [0.25, 0.2]], np.float32)
  boxes, classes, valid = random_objects(rng, 2, 4)
  raw = rng.normal(0, 1, (2, 3, 3, 2, 7)).astype(np.float32)
  # Make one non-responsible prediction overlap a truth box well, so the ignore rule matters.
  raw[0, 0, 0, 0, 2:4] = 3.0
  loss_fn = jax.jit(lambda r, ignore: D.yolo_loss(r, boxes, classes, valid, anchors, lambda_coord=5.0,
                                                  lambda_noobj=0.5, ignore_iou=ignore))
  for ignore in (0.6, 0.05):
    loss, metrics = loss_fn(raw, ignore)
    assert float(loss) == pytest.approx(np_yolo_loss(raw, boxes, classes, valid, anchors, 5.0, 0.5, ignore),
                                        rel=1e-4)
    assert float(loss) == pytest.approx(sum(float(v) for v in metrics.values()), rel=1e-5)
  grads = jax.jit(jax.grad(lambda r: loss_fn(r, 0.6)[0]))(raw)
  assert np.all(np.isfinite(grads))


def test_yolo_tiny_shapes_and_params():
  model = models.create("yolo_tiny", num_classes=3, num_anchors=2, widths=(8, 16), deep=False)
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3))))
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, 16, 16, 3))), variables)
  assert out.shape == (2, 8, 8, 2, 8)
  # conv 3x3x3x8 + BN(8) ; conv 3x3x8x16 + BN(16) ; extra conv 3x3x16x16 + BN(16) ; head 1x1x16x16 + 16
  expected = 27 * 8 + 2 * 8 + 72 * 16 + 2 * 16 + 144 * 16 + 2 * 16 + 16 * 16 + 16
  assert models.count_params(variables["params"]) == expected
  with pytest.raises(ValueError, match="stride"):
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 15, 16, 3))))
