"""Augmentation ops against their definitions, composition from a config, normalisation and ten-crop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from cnnjax.data import augment

KEY = jax.random.key(0)


def image(h=8, w=8, c=3, seed=0):
  return np.random.default_rng(seed).random((h, w, c)).astype(np.float32)


def keys(n, seed=1):
  return jax.random.split(jax.random.key(seed), n)


def scipy_affine(x, matrix):
  """Reference: input = matrix @ (output - centre) + centre, bilinear, zeros outside, per channel."""
  centre = (np.array(x.shape[:2]) - 1) / 2.0
  offset = centre - matrix @ centre
  return np.stack([ndimage.affine_transform(x[..., c], matrix, offset=offset, order=1, mode="grid-constant",
                                            cval=0.0) for c in range(x.shape[-1])], axis=-1)


def test_flips_follow_their_definitions():
  x = image(5, 7)
  np.testing.assert_array_equal(augment.flip_lr(KEY, x, p=1.0), x[:, ::-1])
  np.testing.assert_array_equal(augment.flip_ud(KEY, x, p=1.0), x[::-1])
  np.testing.assert_array_equal(augment.flip_lr(KEY, augment.flip_lr(KEY, x, p=1.0), p=1.0), x)
  np.testing.assert_array_equal(augment.flip_lr(KEY, x, p=0.0), x)
  flipped = jax.vmap(lambda k: augment.flip_lr(k, x))(keys(400))
  is_flipped = np.array([np.array_equal(f, x[:, ::-1]) for f in np.asarray(flipped)])
  assert all(np.array_equal(f, x) for f in np.asarray(flipped)[~is_flipped])
  assert 0.4 < is_flipped.mean() < 0.6


def test_random_crop_is_a_window_of_the_padded_image():
  x = image(6, 6, 2)
  padded = np.pad(x, ((2, 2), (2, 2), (0, 0)))
  crops = np.asarray(jax.jit(jax.vmap(lambda k: augment.random_crop(k, x, pad=2, size=(4, 5))))(keys(300)))
  assert crops.shape == (300, 4, 5, 2)
  windows = {(y, z): padded[y:y + 4, z:z + 5] for y in range(7) for z in range(6)}
  seen = set()
  for crop in crops:
    matches = [pos for pos, w in windows.items() if np.array_equal(w, crop)]
    assert matches, "a crop is not a window of the padded image"
    seen.update(matches)
  assert seen == set(windows)  # every in-bounds offset occurs, none outside
  np.testing.assert_array_equal(augment.random_crop(KEY, x, pad=0), x)
  with pytest.raises(ValueError, match="must fit the padded image"):
    augment.random_crop(KEY, x, pad=1, size=9)


def test_rotation_by_0_and_multiples_of_90_degrees():
  x = image(7, 7)
  np.testing.assert_allclose(augment.rotate(KEY, x, max_degrees=0.0), x, atol=1e-6)
  for k, degrees in ((1, 90.0), (2, 180.0), (-1, -90.0)):
    got = augment.rotate(KEY, x, min_degrees=degrees, max_degrees=degrees)
    np.testing.assert_allclose(got, np.rot90(x, k), atol=1e-5)


def test_rotation_and_shear_match_a_scipy_affine_resampling():
  x = image(9, 11)
  t = np.deg2rad(30.0)
  got = augment.rotate(KEY, x, min_degrees=30.0, max_degrees=30.0)
  np.testing.assert_allclose(got, scipy_affine(x, np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])),
                             atol=1e-5)
  np.testing.assert_allclose(augment.shear(KEY, x, max_degrees=0.0), x, atol=1e-6)
  s = np.tan(np.deg2rad(15.0))
  got = augment.shear(KEY, x, min_degrees=15.0, max_degrees=15.0)
  np.testing.assert_allclose(got, scipy_affine(x, np.array([[1.0, s], [s, 1.0]])), atol=1e-5)
  angles = jax.vmap(lambda k: augment._uniform(k, None, 10.0))(keys(500))
  assert float(angles.min()) >= -10.0 and float(angles.max()) <= 10.0 and float(angles.min()) < -9.0


def test_warp_is_the_identity_at_zero_strength_and_a_smooth_bounded_displacement():
  x = image(16, 16)
  np.testing.assert_array_equal(augment.warp(KEY, x, strength=0.0), x)
  # On a ramp image (value = column index) a warp returns column + horizontal displacement.
  ramp = np.tile(np.arange(16, dtype=np.float32)[None, :, None], (16, 1, 1))
  dx = np.asarray(augment.warp(KEY, ramp, strength=2.0, mode="nearest"))[2:-2, 2:-2, 0] - np.arange(2, 14)
  assert 0.2 < np.abs(dx).max() <= 2.0 * 1.25  # bicubic interpolation may overshoot the lattice values a little
  # Smooth: the field changes by at most about 2 * strength per lattice cell (16 / 4 pixels).
  assert np.abs(np.diff(dx, axis=1)).max() < 1.5 * 2 * 2.0 / 4


def test_colour_shift_is_a_per_channel_affine_map_within_the_ranges():
  x = image(6, 6)
  for k in keys(5):
    y = np.asarray(augment.colour_shift(k, x, max_offset=0.1, max_scale=0.2))
    for c in range(3):
      scale, offset = np.polyfit(x[..., c].ravel(), y[..., c].ravel(), 1)
      np.testing.assert_allclose(y[..., c], scale * x[..., c] + offset, atol=1e-5)
      assert abs(scale - 1) <= 0.2 + 1e-5 and abs(offset) <= 0.1 + 1e-5


def test_pca_colour_stats_are_the_pixel_covariance_eigenpairs():
  rng = np.random.default_rng(0)
  mix = np.array([[1.0, 0.5, 0.2], [0.0, 0.6, 0.3], [0.0, 0.0, 0.1]])
  images = np.clip(0.5 + 0.1 * rng.normal(size=(10, 6, 6, 3)) @ mix, 0, 1)
  images_u8 = np.round(images * 255).astype(np.uint8)
  eigvals, eigvecs = augment.pca_colour_stats(images_u8, chunk=3)
  cov = np.cov(images_u8.reshape(-1, 3).T / 255.0)
  np.testing.assert_allclose(eigvals, np.sort(np.linalg.eigvalsh(cov))[::-1], rtol=1e-4)
  np.testing.assert_allclose(cov @ eigvecs, eigvecs * eigvals, atol=1e-6)
  assert np.all(np.diff(eigvals) <= 0)


def test_pca_colour_shift_lies_in_the_eigenvector_span_with_alpha_of_std_0_1():
  x = image(4, 4)
  eigvecs = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))[0].astype(np.float32)
  eigvals = np.array([0.05, 0.01, 0.0], np.float32)  # the third direction must get no shift
  out = jax.vmap(lambda k: augment.pca_colour(k, x, eigvals, eigvecs))(keys(4000))
  shift = np.asarray(out) - x
  np.testing.assert_allclose(shift, np.broadcast_to(shift[:, :1, :1], shift.shape), atol=1e-6)  # same for every pixel
  coefficients = shift[:, 0, 0] @ eigvecs  # coordinates in the eigenbasis = alpha * eigvals
  np.testing.assert_allclose(coefficients[:, 2], 0.0, atol=1e-6)
  alpha = coefficients[:, :2] / eigvals[:2]
  np.testing.assert_allclose(alpha.std(0), 0.1, rtol=0.06)
  np.testing.assert_allclose(alpha.mean(0), 0.0, atol=0.01)
  with pytest.raises(ValueError, match="eigvals/eigvecs must have shapes"):
    augment.pca_colour(KEY, x, eigvals[:2], eigvecs)


def test_ten_crop_equals_the_numpy_slices():
  x = image(7, 6, 2)
  crops = np.asarray(augment.ten_crop(x, (4, 3)))
  expected = [x[:4, :3], x[:4, 3:], x[3:, :3], x[3:, 3:], x[1:5, 1:4]]
  expected += [e[:, ::-1] for e in expected]
  np.testing.assert_array_equal(crops, np.stack(expected))
  with pytest.raises(ValueError, match="larger than the image"):
    augment.ten_crop(x, 8)


def test_ten_crop_average_averages_outputs_over_the_crops():
  images = np.stack([image(6, 6, 1, seed=s) for s in range(2)])
  got = augment.ten_crop_average(lambda c: jnp.stack([c.mean((1, 2, 3)), c.max((1, 2, 3))], -1), images, 4)
  for i, x in enumerate(images):
    crops = np.asarray(augment.ten_crop(x, 4))
    np.testing.assert_allclose(got[i], [crops.mean(), crops.max((1, 2, 3)).mean()], rtol=1e-6)


def test_normalize_follows_the_formula():
  images = np.random.default_rng(0).integers(0, 256, (2, 3, 3, 3), dtype=np.uint8)
  mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
  expected = (images / 255.0 - np.array(mean)) / np.array(std)
  np.testing.assert_allclose(augment.normalize(images, mean, std), expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(augment.normalize(images / 255.0, mean, std), expected, rtol=1e-5, atol=1e-6)
  assert augment.normalize(images, mean, std).dtype == jnp.float32
  with pytest.raises(ValueError, match="std must be positive"):
    augment.normalize(images, mean, (0.2, 0.0, 0.2))


SPEC = [
    "flip_lr",
    {"name": "random_crop", "pad": 2},
    {"name": "rotate", "max_degrees": 10},
    "shear",
    {"name": "warp", "strength": 1.0},
    "colour_shift",
    {"name": "pca_colour", "eigvals": [0.02, 0.005, 0.001], "eigvecs": np.eye(3).tolist()},
]


@pytest.fixture(scope="module")
def jitted():
  return jax.jit(augment.build(SPEC))


def test_build_jits_is_deterministic_and_per_example(jitted):
  batch = np.repeat(np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8), 3, axis=0)
  first, again = jitted(KEY, batch), jitted(KEY, batch)
  assert first.shape == (3, 8, 8, 3) and first.dtype == jnp.float32
  np.testing.assert_array_equal(first, again)
  assert not np.allclose(first[0], first[1])  # identical inputs, different per-example keys
  assert not np.allclose(first, jitted(jax.random.key(1), batch))


def test_empty_spec_only_converts_to_float():
  batch = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 1), dtype=np.uint8)
  np.testing.assert_allclose(augment.build([])(KEY, batch), batch / 255.0, rtol=1e-6)


def test_build_rejects_bad_specs():
  with pytest.raises(ValueError, match=r"unknown augmentation 'blur'.*'flip_lr'.*'warp'"):
    augment.build(["flip_lr", "blur"])
  with pytest.raises(ValueError, match=r"'rotate' got unknown parameters \['degrees'\].*'max_degrees'"):
    augment.build([{"name": "rotate", "degrees": 3}])
  with pytest.raises(ValueError, match="spec\\[0\\] must be a name or a dict"):
    augment.build([3])
  with pytest.raises(ValueError, match="write \\['flip_lr'\\]"):
    augment.build("flip_lr")
  with pytest.raises(ValueError, match="batch"):
    augment.build(["flip_lr"])(KEY, np.zeros((4, 4, 3), np.uint8))
