"""Region proposals, RoI pooling, warping, box deltas and the R-CNN loss against NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.detection import box_iou, rcnn
from cnnjax.detection import proposals as P


def np_roi_max_pool(features, boxes, ph, pw):
  h, w, c = features.shape
  out = np.zeros((len(boxes), ph, pw, c))
  for r, (x1, y1, x2, y2) in enumerate(boxes):
    for i in range(ph):
      for j in range(pw):
        def span(lo, hi, k, n, extent):
          a, b = lo * extent + (hi - lo) * extent * k / n, lo * extent + (hi - lo) * extent * (k + 1) / n
          start = min(max(int(np.floor(a)), 0), extent - 1)
          end = min(max(int(np.ceil(b)), start + 1), extent)
          return start, end
        r0, r1 = span(y1, y2, i, ph, h)
        c0, c1 = span(x1, x2, j, pw, w)
        out[r, i, j] = features[r0:r1, c0:c1].max(axis=(0, 1))
  return out


def test_roi_max_pool_matches_numpy_reference():
  rng = np.random.default_rng(0)
  features = rng.normal(size=(7, 9, 3)).astype(np.float32)
  xy = rng.uniform(0, 0.7, (6, 2))
  boxes = np.concatenate([xy, xy + rng.uniform(0.02, 0.3, (6, 2))], 1).astype(np.float32)
  boxes[0] = [0, 0, 1, 1]
  got = jax.jit(lambda f, b: P.roi_max_pool(f, b, (2, 3)))(features, boxes)
  np.testing.assert_allclose(got, np_roi_max_pool(features, boxes, 2, 3), rtol=1e-6)


def test_crop_and_resize_identity_and_bilinear():
  rng = np.random.default_rng(1)
  image = rng.uniform(size=(8, 8, 2)).astype(np.float32)
  full = P.crop_and_resize(jnp.asarray(image), jnp.array([[0, 0, 1, 1]], jnp.float32), 8)
  np.testing.assert_allclose(full[0], image, atol=1e-5)
  # The right half sampled at 2x4: pixel centres fall at fractional positions -> bilinear interpolation.
  got = np.asarray(P.crop_and_resize(jnp.asarray(image), jnp.array([[0.5, 0, 1, 1]], jnp.float32), 2)[0])
  for i in range(2):
    for j in range(2):
      y, x = (i + 0.5) / 2 * 8 - 0.5, 4 + (j + 0.5) / 2 * 4 - 0.5
      y0, x0 = int(np.floor(y)), int(np.floor(x))
      fy, fx = y - y0, x - x0
      ref = ((1 - fy) * (1 - fx) * image[y0, x0] + (1 - fy) * fx * image[y0, x0 + 1] +
             fy * (1 - fx) * image[y0 + 1, x0] + fy * fx * image[y0 + 1, x0 + 1])
      np.testing.assert_allclose(got[i, j], ref, atol=1e-5)


def test_deltas_round_trip_and_formula():
  props = np.array([[0.1, 0.2, 0.3, 0.6], [0.5, 0.5, 0.9, 0.7]], np.float32)
  truth = np.array([[0.12, 0.18, 0.36, 0.5], [0.4, 0.45, 0.95, 0.8]], np.float32)
  d = np.asarray(P.encode_deltas(props, truth))
  np.testing.assert_allclose(d[0], [(0.24 - 0.2) / 0.2, (0.34 - 0.4) / 0.4, np.log(0.24 / 0.2), np.log(0.32 / 0.4)],
                             rtol=1e-4)
  np.testing.assert_allclose(P.decode_deltas(props, d), truth, atol=1e-6)


def test_selective_search_finds_two_clear_objects():
  rng = np.random.default_rng(2)
  image = np.clip(rng.normal(120, 8, (64, 64, 3)), 0, 255).astype(np.uint8)
  image[8:28, 10:40] = [230, 20, 20]
  image[36:60, 30:50] = [20, 20, 230]
  truth = np.array([[10, 8, 40, 28], [30, 36, 50, 60]], np.float32) / 64
  boxes = P.selective_search(image)
  assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(np.unique(boxes, axis=0)) == len(boxes)
  assert np.all(np.asarray(box_iou(truth, boxes)).max(1) > 0.9)
  padded, valid = P.pad_proposals(boxes, len(boxes) + 2)
  assert valid.sum() == len(boxes) and np.all(padded[-2:] == 0)
  with pytest.raises(ValueError, match="image"):
    P.selective_search(image[..., 0])


def test_label_proposals_and_rcnn_loss():
  truth = np.array([[0.1, 0.1, 0.5, 0.5]], np.float32)
  props = np.array([[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.7], [0.6, 0.6, 0.9, 0.9], [0.1, 0.1, 0.5, 0.95]],
                   np.float32)
  labels, deltas, best = rcnn.label_proposals(props, truth, np.array([2]))
  # IoUs: 1, 0.667, 0, 0.47 -> class 2 + 1, class 2 + 1, background, ignored.
  assert labels.tolist() == [3, 3, 0, -1]
  np.testing.assert_allclose(deltas[0], 0, atol=1e-6)
  np.testing.assert_allclose(deltas[2], 0)
  rng = np.random.default_rng(3)
  logits, pred = rng.normal(size=(4, 4)).astype(np.float32), rng.normal(size=(4, 4)).astype(np.float32)
  valid = np.array([1, 1, 1, 0], bool)
  loss, metrics = jax.jit(rcnn.rcnn_loss)({"logits": logits, "deltas": pred}, labels, deltas, valid)
  logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  ce = -np.mean([logp[i, labels[i]] for i in range(3)])
  diff = np.abs(pred[:2] - deltas[:2])
  huber = np.where(diff <= 1, 0.5 * diff ** 2, diff - 0.5).sum() / 2
  assert float(metrics["class_loss"]) == pytest.approx(ce, rel=1e-5)
  assert float(loss) == pytest.approx(ce + huber, rel=1e-5)


def test_fast_rcnn_and_rcnn_shapes():
  fast = rcnn.FastRCNN(num_classes=3, widths=(4, 8), pools=1, pool_size=2, hidden=8)
  x = {"pixels": jnp.zeros((2, 16, 16, 3)), "rois": jnp.zeros((2, 5, 4))}
  out = jax.eval_shape(lambda: fast.init_with_output(jax.random.PRNGKey(0), x)[0])
  assert out["logits"].shape == (2, 5, 4) and out["deltas"].shape == (2, 5, 4)
  crops = rcnn.warp_batch(jnp.zeros((2, 16, 16, 3)), jnp.tile(jnp.array([[0, 0, 1, 1.0]]), (2, 5, 1)), 8)
  assert crops.shape == (10, 8, 8, 3)
  out = jax.eval_shape(lambda: rcnn.RCNN(num_classes=3, widths=(4,)).init_with_output(jax.random.PRNGKey(0),
                                                                                        crops)[0])
  assert out["logits"].shape == (10, 4)
