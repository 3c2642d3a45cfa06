"""Pillow's ImageOps / ImageEnhance on uint8 against cnnjax's float ops, within uint8 rounding."""

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from cnnjax.data import photometric

RNG = np.random.default_rng(0)
EXACT = 1e-3  # the same uint8 level (float32 x 255 is off by ~1e-5)
# Random pixels, plus an image with a narrow range (autocontrast and equalize have something to stretch).
RGB = RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)
NARROW = RNG.integers(60, 140, (9, 11, 3), dtype=np.uint8)
GREY = RNG.integers(30, 200, (9, 11, 1), dtype=np.uint8)


def ours(op, image, *args):
  return np.asarray(op(image.astype(np.float32) / 255.0, *args)) * 255.0


def pil(image):
  return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def theirs(out, shape):
  return np.asarray(out, np.float64).reshape(shape)


def assert_close(actual, expected, tolerance):
  assert actual.shape == expected.shape
  assert np.abs(actual - expected).max() <= tolerance, np.abs(actual - expected).max()


@pytest.mark.parametrize("image", [RGB, GREY], ids=["rgb", "grey"])
@pytest.mark.parametrize("bits", [1, 4, 7, 8])
def test_posterize_is_exact(image, bits):
  expected = theirs(ImageOps.posterize(pil(image), bits), image.shape)
  assert_close(ours(photometric.posterize, image, bits), expected, EXACT)


@pytest.mark.parametrize("threshold", [0, 77, 128, 255])
def test_solarize_is_exact(threshold):
  expected = theirs(ImageOps.solarize(pil(RGB), threshold), RGB.shape)
  assert_close(ours(photometric.solarize, RGB, threshold / 255.0), expected, EXACT)


@pytest.mark.parametrize("image", [RGB, NARROW, GREY, np.full((4, 4, 3), 9, np.uint8)],
                         ids=["rgb", "narrow", "grey", "flat"])
def test_equalize_is_exact(image):
  assert_close(ours(photometric.equalize, image), theirs(ImageOps.equalize(pil(image)), image.shape), EXACT)


@pytest.mark.parametrize("image", [NARROW, GREY, np.full((4, 4, 3), 9, np.uint8)], ids=["narrow", "grey", "flat"])
def test_autocontrast_within_rounding(image):
  # Pillow truncates its look-up table to integers: at most one level below the exact stretch.
  assert_close(ours(photometric.autocontrast, image), theirs(ImageOps.autocontrast(pil(image)), image.shape), 1)


@pytest.mark.parametrize("name, enhancer", [("brightness", ImageEnhance.Brightness),
                                            ("contrast", ImageEnhance.Contrast),
                                            ("saturation", ImageEnhance.Color),
                                            ("sharpness", ImageEnhance.Sharpness)])
@pytest.mark.parametrize("factor", [0.3, 1.9])
@pytest.mark.parametrize("image", [RGB, NARROW, GREY], ids=["rgb", "narrow", "grey"])
def test_enhancers_within_rounding(name, enhancer, factor, image):
  if name == "saturation" and image.shape[-1] == 1:
    pytest.skip("Pillow's Color enhancer needs RGB (a grey image is its own grey version)")
  expected = theirs(enhancer(pil(image)).enhance(factor), image.shape)
  # Pillow rounds its grey image, its mean (contrast) and its smoothed image (sharpness) to integers,
  # then the blend: up to 1.5 levels apart for the blends, and factor x 0.5 more for the degenerate.
  assert_close(ours(getattr(photometric, name), image, factor), expected, 1.5 + 0.5 * abs(1 - factor))


def test_grey_is_itu_601_luma():
  expected = theirs(pil(RGB).convert("L"), RGB.shape[:2] + (1,))
  assert_close(np.asarray(photometric.grey(RGB.astype(np.float32) / 255)) * 255, expected, 0.5 + 1e-3)


@pytest.mark.parametrize("rows, cols", [(2, 0), (0, -3), (-1, 4), (0, 0), (20, 0)])
def test_translate_moves_whole_pixels_and_fills_zero(rows, cols):
  image = RNG.random((6, 7, 2)).astype(np.float32)
  expected = np.zeros_like(image)
  h, w, _ = image.shape
  for r in range(h):
    for c in range(w):
      if 0 <= r - rows < h and 0 <= c - cols < w:
        expected[r, c] = image[r - rows, c - cols]
  np.testing.assert_array_equal(np.asarray(photometric.translate(image, rows, cols)), expected)


def test_bad_arguments_name_the_value():
  with pytest.raises(ValueError, match="bits=9"):
    photometric.posterize(RGB / 255.0, 9)
  with pytest.raises(ValueError, match="1 or 3 channels"):
    photometric.grey(np.zeros((2, 2, 2), np.float32))
