"""Localization and landmark heads and losses; the generated shapes data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import detection as D
from cnnjax import models
from cnnjax.data.builders import shapes, shapes_single
from cnnjax.detection import inputs


def np_bce(z, y):
  return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))


def test_localization_and_landmark_losses_match_formulas():
  rng = np.random.default_rng(0)
  n, c, k = 5, 3, 4
  out = {"objectness": rng.normal(size=n), "box": rng.uniform(size=(n, 4)), "logits": rng.normal(size=(n, c)),
         "points": rng.uniform(size=(n, k, 2)), "presence": rng.normal(size=(n, k))}
  has = np.array([1, 0, 1, 1, 0])
  labels, boxes = rng.integers(0, c, n), rng.uniform(size=(n, 4))
  loss, m = jax.jit(D.localization_loss)(out, has, labels, boxes)
  logp = out["logits"] - np.log(np.exp(out["logits"]).sum(1, keepdims=True))
  p = has == 1
  obj = np_bce(out["objectness"], has).mean()
  box = ((out["box"] - boxes) ** 2).sum(1)[p].mean()
  cls = -logp[np.arange(n), labels][p].mean()
  assert float(loss) == pytest.approx(obj + box + cls, rel=1e-5)
  assert float(m["box_loss"]) == pytest.approx(box, rel=1e-5)
  points, mask = rng.uniform(size=(n, k, 2)), rng.uniform(size=(n, k)) < 0.6
  loss, _ = jax.jit(D.landmark_loss)(out, points, mask)
  ref = ((out["points"] - points) ** 2).sum(-1)[mask].mean() + np_bce(out["presence"], mask).mean()
  assert float(loss) == pytest.approx(ref, rel=1e-5)


def test_localizer_outputs_and_params():
  model = models.create("localizer", num_classes=3, num_landmarks=4, widths=(4, 8), hidden=16)
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3))))
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, 16, 16, 3))), variables)
  assert {k: v.shape for k, v in out.items()} == {
      "objectness": (2,), "box": (2, 4), "logits": (2, 3), "points": (2, 4, 2), "presence": (2, 4)}
  # convs without bias + BN scale/offset, dense 8->16, localization 16->8, landmarks 16->12
  expected = 27 * 4 + 8 + 36 * 8 + 16 + (8 * 16 + 16) + (16 * 8 + 8) + (16 * 12 + 12)
  assert models.count_params(variables["params"]) == expected


def test_shapes_generation_is_deterministic_and_consistent():
  a = shapes.generate(shapes.example_rng("train", 3), 96, 4, shapes.SIZE_RANGE)
  b = shapes.generate(shapes.example_rng("train", 3), 96, 4, shapes.SIZE_RANGE)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  for i in range(20):
    ex = shapes.generate(shapes.example_rng("test", i), 96, int(1 + i % 4), shapes.SIZE_RANGE)
    boxes, pts, mask = ex["boxes"], ex["landmarks"], ex["landmark_mask"].astype(bool)
    assert ex["image"].shape == (96, 96, 3) and ex["image"].dtype == np.uint8
    assert 1 <= len(boxes) <= 4 and np.all(boxes[:, 2:] > boxes[:, :2]) and np.all((boxes >= 0) & (boxes <= 1))
    # Landmarks lie in their box; their count is the shape's: circle 1, square 4, triangle 3.
    assert mask.sum(1).tolist() == [{0: 1, 1: 4, 2: 3}[c] for c in ex["classes"]]
    lo, hi = boxes[:, None, :2] - 1e-6, boxes[:, None, 2:] + 1e-6
    assert np.all(((pts >= lo) & (pts <= hi)).all(-1) | ~mask)
  single = shapes_single.generate_single("train", 0)
  assert single["image"].shape == (64, 64, 3) and single["box"].shape == (4,) and single["landmarks"].shape == (4, 2)


def test_square_pixels_fill_its_box():
  mask = shapes.shape_mask(1, np.array([0.25, 0.5, 0.75, 1.0]), 0.5, 8)
  expected = np.zeros((8, 8), bool)
  expected[4:8, 2:6] = True
  np.testing.assert_array_equal(mask, expected)


def test_pad_objects_voc_mapping_and_flip():
  rec = {"image": np.zeros((4, 4, 3), np.uint8), "boxes": np.array([[0.1, 0.2, 0.3, 0.4]]), "classes": np.array([2])}
  out = inputs.pad_objects(rec, 3)
  assert out["valid"].tolist() == [True, False, False] and out["boxes"].shape == (3, 4) and out["classes"][0] == 2
  voc = {"image": np.zeros((10, 20, 3), np.uint8),
         "objects": {"bbox": np.array([[0.2, 0.1, 0.6, 0.5]], np.float32), "label": np.array([14])}}
  mapped = inputs.voc_record(voc, 8)
  assert mapped["image"].shape == (8, 8, 3)
  np.testing.assert_allclose(mapped["boxes"], [[0.1, 0.2, 0.5, 0.6]])
  batch = {"image": np.arange(2 * 2 * 3 * 3).reshape(2, 2, 3, 3).astype(np.uint8),
           "boxes": np.array([[[0.1, 0.2, 0.3, 0.4]], [[0.1, 0.2, 0.3, 0.4]]], np.float32)}
  flipped = jax.jit(inputs.flip_batch)(jax.random.PRNGKey(0), batch)
  for i in range(2):
    same = np.allclose(flipped["image"][i], batch["image"][i] / 255)
    mirrored = np.allclose(flipped["image"][i], batch["image"][i, :, ::-1] / 255)
    assert same != mirrored
    expected = [0.1, 0.2, 0.3, 0.4] if same else [0.7, 0.2, 0.9, 0.4]
    np.testing.assert_allclose(flipped["boxes"][i, 0], expected, atol=1e-6)
