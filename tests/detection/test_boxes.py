"""Box formats, IoU, GIoU and NMS against NumPy references written here."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from cnnjax.detection import boxes as B


def np_iou(a, b):
  iou = np.zeros((len(a), len(b)))
  for i, p in enumerate(a):
    for j, q in enumerate(b):
      iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
      ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
      inter = iw * ih
      union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
      iou[i, j] = inter / union if union > 0 else 0.0
  return iou


def np_greedy_nms(boxes, scores, thr, classes=None, score_threshold=None):
  """Textbook greedy NMS; ties in score go to the lower index."""
  order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
  keep = []
  for i in order:
    if score_threshold is not None and scores[i] <= score_threshold:
      continue
    ok = True
    for j in keep:
      if classes is not None and classes[i] != classes[j]:
        continue
      if np_iou(boxes[i:i + 1], boxes[j:j + 1])[0, 0] > thr:
        ok = False
        break
    if ok:
      keep.append(i)
  return keep


def random_boxes(rng, n, scale=10.0):
  xy = rng.uniform(0, scale, (n, 2))
  wh = rng.uniform(0.5, scale / 2, (n, 2))
  return np.concatenate([xy, xy + wh], 1).astype(np.float32)


def padded(keep, n):
  return np.array(keep + [-1] * (n - len(keep)), np.int32)


def test_box_convert_round_trips_and_matches_formula():
  b = random_boxes(np.random.default_rng(0), 7)
  x1, y1, x2, y2 = b.T
  np.testing.assert_allclose(B.box_convert(b, "xyxy", "xywh"), np.stack([x1, y1, x2 - x1, y2 - y1], 1), rtol=1e-6)
  np.testing.assert_allclose(
      B.box_convert(b, "xyxy", "cxcywh"), np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1), rtol=1e-6)
  for fmt in ("xywh", "cxcywh"):
    back = B.box_convert(B.box_convert(b, "xyxy", fmt), fmt, "xyxy")
    np.testing.assert_allclose(back, b, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(
      B.box_convert(B.box_convert(b, "xyxy", "xywh"), "xywh", "cxcywh"), B.box_convert(b, "xyxy", "cxcywh"),
      rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="in_fmt"):
    B.box_convert(b, "yxyx", "xyxy")


def test_iou_matches_numpy_and_torch_giou():
  rng = np.random.default_rng(1)
  a, b = random_boxes(rng, 9), random_boxes(rng, 6)
  np.testing.assert_allclose(B.box_iou(a, b), np_iou(a, b), rtol=1e-5, atol=1e-6)
  # Touching boxes share an edge only: IoU exactly 0.
  touch = np.array([[0, 0, 1, 1], [1, 0, 2, 1]], np.float32)
  assert float(B.box_iou(touch, touch)[0, 1]) == 0.0
  # GIoU from its definition in torch.
  ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
  hull_lt = torch.minimum(ta[:, None, :2], tb[None, :, :2])
  hull_rb = torch.maximum(ta[:, None, 2:], tb[None, :, 2:])
  hull = (hull_rb - hull_lt).prod(-1)
  iou = torch.tensor(np_iou(a, b))
  area = lambda t: (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])
  inter = iou * (area(ta)[:, None] + area(tb)[None]) / (1 + iou)
  union = area(ta)[:, None] + area(tb)[None] - inter
  expected = iou - (hull - union) / hull
  np.testing.assert_allclose(B.generalized_box_iou(a, b), expected.numpy(), rtol=1e-4, atol=1e-5)


def test_wh_iou_is_iou_of_centred_boxes():
  rng = np.random.default_rng(2)
  wa, wb = rng.uniform(0.1, 1, (5, 2)), rng.uniform(0.1, 1, (4, 2))
  centred = lambda wh: np.concatenate([-wh / 2, wh / 2], 1)
  np.testing.assert_allclose(B.wh_iou(wa, wb), np_iou(centred(wa), centred(wb)), rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_greedy_reference_on_random_boxes(seed):
  rng = np.random.default_rng(seed)
  n = 40
  boxes = random_boxes(rng, n)
  # Rounded scores make many exact ties.
  scores = np.round(rng.uniform(0, 1, n), 1).astype(np.float32)
  classes = rng.integers(0, 3, n)
  for thr in (0.3, 0.5):
    np.testing.assert_array_equal(B.nms(boxes, scores, thr), padded(np_greedy_nms(boxes, scores, thr), n))
    np.testing.assert_array_equal(
        B.batched_nms(boxes, scores, classes, thr), padded(np_greedy_nms(boxes, scores, thr, classes), n))
  got = B.nms(boxes, scores, 0.5, max_outputs=5, score_threshold=0.45)
  np.testing.assert_array_equal(got, padded(np_greedy_nms(boxes, scores, 0.5, score_threshold=0.45), n)[:5])
  got = B.nms(boxes, scores, 0.5, max_outputs=n + 3)
  assert got.shape == (n + 3,) and got.dtype == jnp.int32 and np.all(np.asarray(got)[-3:] == -1)


def test_nms_threshold_is_strict_and_ties_go_to_lower_index():
  # Two boxes with IoU exactly 0.5 (area 2 and 1 inside it -> IoU 1/2).
  boxes = np.array([[0, 0, 2, 1], [0, 0, 1, 1], [5, 5, 6, 6]], np.float32)
  scores = np.array([0.9, 0.9, 0.1], np.float32)
  assert float(B.box_iou(boxes, boxes)[0, 1]) == 0.5
  np.testing.assert_array_equal(B.nms(boxes, scores, 0.5), [0, 1, 2])     # 0.5 is not > 0.5
  np.testing.assert_array_equal(B.nms(boxes, scores, 0.4999), [0, 2, -1])  # just above: suppressed
  np.testing.assert_array_equal(B.nms(boxes[[1, 0, 2]], scores, 0.4999), [0, 2, -1])
  # Touching boxes never suppress each other, even at threshold 0.
  touch = np.array([[0, 0, 1, 1], [1, 0, 2, 1]], np.float32)
  np.testing.assert_array_equal(B.nms(touch, np.array([0.2, 0.8], np.float32), 0.0), [1, 0])


def test_nms_under_jit_and_vmap_matches_eager():
  rng = np.random.default_rng(3)
  boxes = np.stack([random_boxes(rng, 12) for _ in range(3)])
  scores = rng.uniform(0, 1, (3, 12)).astype(np.float32)
  f = jax.jit(jax.vmap(lambda b, s: B.nms(b, s, 0.4, max_outputs=6)))
  got = f(boxes, scores)
  for i in range(3):
    np.testing.assert_array_equal(got[i], padded(np_greedy_nms(boxes[i], scores[i], 0.4), 12)[:6])


def test_bad_boxes_raise_value_error():
  with pytest.raises(ValueError, match="x2 >= x1"):
    B.nms(np.array([[2, 0, 1, 1]], np.float32), np.ones(1, np.float32), 0.5)
  with pytest.raises(ValueError, match="finite"):
    B.batched_nms(np.array([[0, 0, np.nan, 1]], np.float32), np.ones(1, np.float32), np.zeros(1), 0.5)
  with pytest.raises(ValueError, match="shape"):
    B.validate_boxes(np.zeros((3, 5)))
  with pytest.raises(ValueError, match="scores"):
    B.nms(np.zeros((3, 4), np.float32), np.ones(2, np.float32), 0.5)
  with pytest.raises(ValueError, match="iou_threshold"):
    B.nms(np.zeros((3, 4), np.float32), np.ones(3, np.float32), 1.5)


def test_select_detections_gathers_the_kept_boxes_in_nms_order():
  from cnnjax.detection import select_detections
  boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
  scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
  classes = np.array([0, 0, 0, 1], np.int32)
  out = select_detections(boxes, scores, classes, 0.5, max_outputs=5)
  # Box 1 overlaps box 0 of its class (IoU 0.68) and goes; box 3 is of another class and stays.
  np.testing.assert_array_equal(out["valid"], [True, True, True, False, False])
  np.testing.assert_array_equal(out["boxes"][:3], boxes[[0, 2, 3]])
  np.testing.assert_allclose(out["scores"], [0.9, 0.7, 0.6, 0.0, 0.0])
  np.testing.assert_array_equal(out["classes"], [0, 0, 1, -1, -1])


def test_empty_inputs_give_empty_results_as_in_torchvision():
  # torchvision.ops: box_iou of [0,4] x [M,4] is [0,M]; nms of no boxes is an empty index tensor.
  assert B.box_iou(np.zeros((0, 4)), np.ones((3, 4))).shape == (0, 3)
  assert B.generalized_box_iou(np.ones((2, 4)), np.zeros((0, 4))).shape == (2, 0)
  assert B.nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)
  np.testing.assert_array_equal(B.nms(np.zeros((0, 4)), np.zeros(0), 0.5, max_outputs=2), [-1, -1])
  assert B.batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int32), 0.5).shape == (0,)
  assert jax.jit(lambda b, s: B.nms(b, s, 0.5, max_outputs=3))(jnp.zeros((0, 4)), jnp.zeros(0)).tolist() == [-1] * 3


def test_nan_scores_and_malformed_boxes_are_rejected_outside_jit_and_never_kept_inside():
  good = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [5, 5, 6, 6], [0, 0, 2, 2]], np.float32)
  with pytest.raises(ValueError, match=r"scores must be finite; score at index 2 is nan"):
    B.nms(good, np.array([0.1, 0.2, np.nan, 0.3], np.float32), 0.5)
  with pytest.raises(ValueError, match=r"b must be finite; box at index \(1,\)"):
    B.box_iou(good, np.array([[0, 0, 1, 1], [0, np.nan, 1, 1]]))
  with pytest.raises(ValueError, match=r"a \(xyxy\) must have x2 >= x1 and y2 >= y1; box at index \(0,\)"):
    B.generalized_box_iou(np.array([[2, 0, 1, 1]]), good)
  # Inside jit: box 0 (NaN score) and box 2 (x2 < x1) are dropped; the greedy NMS of the rest by hand:
  # box 1 (0.5) kept, box 3 (0.2, IoU 0.25 with box 1) kept.
  boxes = good.copy()
  boxes[2] = [6, 5, 5, 6]
  scores = np.array([np.nan, 0.5, 0.9, 0.2], np.float32)
  np.testing.assert_array_equal(jax.jit(lambda b, s: B.nms(b, s, 0.5))(boxes, scores), [1, 3, -1, -1])
