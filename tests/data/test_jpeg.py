"""Host JPEG preprocessing: Inception crop boxes, scaled decoding against a full decode, centre crop, errors."""

import io
import math

import numpy as np
from PIL import Image
import pytest

from cnnjax.data import jpeg, pipeline


def smooth_image(height, width, seed=0):
  """A smooth RGB image (low frequencies survive JPEG and DCT scaling nearly unchanged)."""
  y, x = np.mgrid[0:height, 0:width] / max(height, width)
  phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, 3)
  channels = [127 + 100 * np.sin(2 * np.pi * (x + 0.5 * y) + p) for p in phases]
  return np.stack(channels, -1).astype(np.uint8)


def encode(array, quality=95):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
  return buffer.getvalue()


def reference_crop(array, box, size):
  """Full decode, crop, resize: what the scaled decode must approximate."""
  return np.asarray(Image.fromarray(array).resize((size, size), Image.BILINEAR, box=box)).astype(np.float64)


def test_inception_boxes_follow_the_scale_and_ratio_ranges():
  rng = np.random.default_rng(0)
  for _ in range(300):
    left, top, right, bottom = jpeg.inception_box((500, 375), rng, (0.08, 1.0), (3 / 4, 4 / 3))
    w, h = right - left, bottom - top
    assert 0 <= left and right <= 500 and 0 <= top and bottom <= 375
    assert 0.08 * 500 * 375 * 0.95 <= w * h <= 500 * 375
    assert 3 / 4 * 0.95 <= w / h <= 4 / 3 * 1.05
  # No box of 90-100% of the area fits a 4:1 image at ratios up to 4/3: the central 4/3 crop instead.
  assert jpeg.inception_box((400, 100), rng, (0.9, 1.0), (3 / 4, 4 / 3)) == (133, 0, 266, 100)


def test_scaled_decode_matches_a_full_decode_and_decodes_fewer_pixels():
  array = smooth_image(480, 640)
  data = encode(array)
  assert jpeg.image_size(data) == (640, 480)
  # 1/4 scale: at 1/8 the 480-pixel side (60) would not cover 64.
  assert jpeg.decode_crop(data, (0, 0, 640, 480), 64, 3).shape == (120, 160, 3)
  out = jpeg.crop_resize(data, (0, 0, 640, 480), 64, 3, mirror=False)
  full = reference_crop(np.asarray(Image.open(io.BytesIO(data))), (0, 0, 640, 480), 64)
  assert out.shape == (64, 64, 3) and out.dtype == np.uint8
  assert np.abs(out - full).mean() < 3.0
  # A small box keeps a finer scale: 200 px of a 640-wide image to 96 needs at least 1/2.
  assert jpeg.decode_crop(data, (100, 50, 300, 250), 96, 3).shape == (100, 100, 3)
  out = jpeg.crop_resize(data, (100, 50, 300, 250), 96, 3, mirror=True)
  full = reference_crop(np.asarray(Image.open(io.BytesIO(data))), (100, 50, 300, 250), 96)
  assert np.abs(out - full[:, ::-1]).mean() < 3.0
  # A box smaller than the output decodes at full scale and is upsampled.
  assert jpeg.decode_crop(data, (0, 0, 50, 40), 64, 1).shape == (40, 50, 1)


def test_inception_crop_flips_with_the_same_box_and_keeps_other_keys():
  record = {"image": encode(smooth_image(300, 400)), "label": np.int64(4)}
  plain = jpeg.InceptionCrop(32, flip=False).random_map(record, np.random.default_rng(3))
  assert plain["label"] == 4 and plain["image"].shape == (32, 32, 3)
  draws = [jpeg.InceptionCrop(32).random_map(record, np.random.default_rng(s))["image"] for s in range(8)]
  unflipped = [jpeg.InceptionCrop(32, flip=False).random_map(record, np.random.default_rng(s))["image"]
               for s in range(8)]
  mirrored = [np.array_equal(d, u[:, ::-1]) for d, u in zip(draws, unflipped)]
  same = [np.array_equal(d, u) for d, u in zip(draws, unflipped)]
  assert all(m or s for m, s in zip(mirrored, same)) and 0 < sum(mirrored) < 8


def test_centre_crop_is_resize_shorter_side_then_centre():
  array = smooth_image(300, 450)
  out = jpeg.CentreCrop(56, resize=64).map({"image": array})["image"]
  resized = Image.fromarray(array).resize((96, 64), Image.BILINEAR)
  expected = np.asarray(resized)[4:60, 20:76].astype(np.float64)
  assert out.shape == (56, 56, 3)
  assert np.abs(out - expected).mean() < 2.0
  default = jpeg.CentreCrop(224)
  assert round(224 * jpeg.EVAL_RESIZE_RATIO) == 256 and default.resize is None


def test_grayscale_output_and_array_input():
  gray = smooth_image(40, 50)[..., :1]
  out = jpeg.CentreCrop(16, channels=1).map({"image": gray})["image"]
  assert out.shape == (16, 16, 1) and out.dtype == np.uint8
  rgb = jpeg.CentreCrop(16).map({"image": encode(gray[..., 0])})["image"]
  assert rgb.shape == (16, 16, 3)


def test_bad_settings_and_records_are_named():
  with pytest.raises(ValueError, match="scale must be a pair"):
    jpeg.InceptionCrop(32, scale=(0.5, 0.1))
  with pytest.raises(ValueError, match="size must be a positive integer"):
    jpeg.CentreCrop(0)
  with pytest.raises(ValueError, match="resize must be an integer >= size=32"):
    jpeg.CentreCrop(32, resize=16)
  with pytest.raises(ValueError, match="expected encoded image bytes or a uint8 HWC array, got ndarray float32"):
    jpeg.image_size(np.zeros((4, 4, 3), np.float32))
  source = [{"image": encode(smooth_image(40, 40))}, {"image": b"not a jpeg"}]
  with pytest.raises(ValueError, match="source list record 1 could not be transformed: cannot identify"):
    list(pipeline.eval_batches(source, 2, transform=jpeg.CentreCrop(16)))
  assert math.isclose(jpeg.EVAL_RESIZE_RATIO, 8 / 7)


def test_header_size_without_decoding():
  array = smooth_image(37, 53)
  assert jpeg.image_size(encode(array)) == (53, 37)
  progressive = io.BytesIO()
  Image.fromarray(array).save(progressive, format="JPEG", progressive=True)
  assert jpeg.image_size(progressive.getvalue()) == (53, 37)
  png = io.BytesIO()
  Image.fromarray(array).save(png, format="PNG")
  assert jpeg.image_size(png.getvalue()) == (53, 37)  # not a JPEG: Pillow reads the header
  assert jpeg.CentreCrop(16).map({"image": png.getvalue()})["image"].shape == (16, 16, 3)
