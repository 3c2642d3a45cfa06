"""Receptive-field arithmetic and the top-activating patch search."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.style.extractor import init_vgg_params, vgg_features
from cnnjax.viz.activations import (ReceptiveField, crop, model_features_fn, receptive_fields,
                                    top_activating_patches, vgg_receptive_fields, what_units_see)


def test_receptive_field_formula():
  # n stacked 3x3/1 convs see 2n + 1 pixels; VGG-16's published sizes: conv5_3 196 at jump 16, pool5 212.
  for n in range(1, 6):
    rf = receptive_fields([(f"c{i}", 3, 1, 1) for i in range(n)])[f"c{n - 1}"]
    assert rf == ReceptiveField(2 * n + 1, 1, -n)
  v = vgg_receptive_fields((2, 2, 3, 3, 3))
  assert (v["conv5_3"].size, v["conv5_3"].jump) == (196, 16)
  assert (v["pool5"].size, v["pool5"].jump) == (212, 32)
  # Closed form for a chain: size = 1 + sum (k_l - 1) prod_{m<l} s_m.
  layers = [("a", 7, 2, 3), ("b", 3, 2, 1), ("c", 5, 1, 2), ("d", 2, 2, 0)]
  jumps = np.cumprod([1] + [s for _, _, s, _ in layers])[:-1]
  assert receptive_fields(layers)["d"].size == 1 + sum((k - 1) * j for (_, k, _, _), j in zip(layers, jumps))
  assert receptive_fields(layers)["d"].start == -sum(p * j for (_, _, _, p), j in zip(layers, jumps))
  with pytest.raises(ValueError, match="layer 'x'"):
    receptive_fields([("x", 3, 0, 1)])


def test_vgg_fields_match_gradient_support():
  # Positive weights, inputs and zero biases keep every ReLU open, so the input-gradient support of a unit
  # is exactly its receptive field (average pooling: every window pixel gets gradient).
  params = init_vgg_params(jax.random.key(0), "vgg16", widths=(2, 2, 2, 2, 2), taps=["pool2"])
  params = jax.tree.map(jnp.abs, params)
  fields = vgg_receptive_fields((2, 2, 3, 3, 3))
  x = jnp.full((1, 24, 24, 3), 0.5)
  for tap, (r, c) in (("relu1_2", (0, 3)), ("pool1", (2, 5)), ("relu2_1", (3, 1)), ("pool2", (2, 3))):
    unit = lambda p, im: vgg_features(p, im, [tap], pool="avg", preprocessing="caffe")[tap][0, r, c, 0]
    g = jax.jit(jax.grad(unit, argnums=1))(params, x)
    rows, cols = np.nonzero(np.abs(np.asarray(g[0])).sum(-1))
    rf = fields[tap]
    r0, c0 = rf.start + r * rf.jump, rf.start + c * rf.jump
    assert (rows.min(), rows.max()) == (max(r0, 0), min(r0 + rf.size, 24) - 1), tap
    assert (cols.min(), cols.max()) == (max(c0, 0), min(c0 + rf.size, 24) - 1), tap


def test_crop_pads_outside():
  img = np.arange(5 * 5).reshape(5, 5, 1).astype(np.float32) + 1
  rf = ReceptiveField(3, 1, -1)
  np.testing.assert_array_equal(crop(img, rf, 0, 0)[..., 0], [[0, 0, 0], [0, 1, 2], [0, 6, 7]])
  np.testing.assert_array_equal(crop(img, rf, 2, 2), img[1:4, 1:4])


class Tiny(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    x = nn.relu(nn.Conv(2, (3, 3), padding=1, name="conv")(x))
    return nn.max_pool(x, (2, 2), (2, 2)).sum()


def test_top_patch_holds_the_maximum(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 0.2, size=(12, 10, 10, 1)).astype(np.float32)
  images[7, 5:8, 2:5] = 1.0  # a bright 3x3 square: the strongest response of a box filter
  images[3, 0:2, 0:2] = 0.8  # a weaker one in a corner
  kernel = np.zeros((3, 3, 1, 2), np.float32)
  kernel[..., 0, 0] = 1.0  # unit 0: box filter; unit 1: a single centre tap
  kernel[1, 1, 0, 1] = 1.0
  variables = {"params": {"conv": {"kernel": jnp.asarray(kernel), "bias": jnp.zeros(2)}}}
  features = model_features_fn(Tiny(), variables, ["conv"])
  rf = receptive_fields([("conv", 3, 1, 1)])["conv"]
  top = top_activating_patches(features, [images[:5], images[5:]], {"conv": rf}, units={"conv": [0, 1]}, k=3)
  t = top["conv"]
  assert t.values.shape == (2, 3) and t.patches.shape == (2, 3, 3, 3, 1)
  assert t.image_index[0, 0] == 7 and tuple(t.position[0, 0]) == (6, 3)
  assert t.image_index[0, 1] == 3
  np.testing.assert_allclose(t.patches[0, 0], np.ones((3, 3, 1)))
  # Independent check: the box sum over each reported patch is the unit's value, and the global maximum.
  acts = np.asarray(features(images)["conv"])
  np.testing.assert_allclose(t.values[0, 0], acts[..., 0].max(), rtol=1e-6)
  for j in range(3):
    np.testing.assert_allclose(t.patches[0, j].sum(), t.values[0, j], rtol=1e-5)
    assert t.values[0, j] == acts[t.image_index[0, j], ..., 0].max()
  assert np.all(np.diff(t.values, axis=1) <= 0)
  # The same search from a data source of uint8 records, with the plots written.
  source = [{"image": np.round(im * 255).astype(np.uint8), "label": 0} for im in images]
  top2 = what_units_see(Tiny(), variables, source, {"conv": rf}, units={"conv": [0]}, k=2, batch_size=4,
                        plots_dir=str(tmp_path))
  assert top2["conv"].image_index.tolist() == [[7, 3]]
  for name in ("top_patches_conv.png", "first_layer_filters.png"):
    assert (tmp_path / name).stat().st_size > 0
  with pytest.raises(ValueError, match="units"):
    top_activating_patches(features, [images], {"conv": rf}, units={"conv": [5]})
