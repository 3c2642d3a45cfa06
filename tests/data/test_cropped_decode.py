"""The cropped JPEG decoder against OpenCV's whole decode at the same scale, cut to the window; fallbacks; errors."""

import fnmatch
import io
import pathlib
import tomllib

import cv2
import numpy as np
from PIL import Image
import pytest

from cnnjax.data import cropped_decode, jpeg

# The IMREAD_REDUCED_* bit of 1/1, 1/2, 1/4, 1/8, combined with IMREAD_COLOR (1) or IMREAD_GRAYSCALE (0).
_REDUCED = {1: 0, 2: 16, 4: 32, 8: 64}


def textured_jpeg(height, width, mode="RGB", **save):
  """Smooth colour fields plus noise (every DCT frequency present), encoded by Pillow."""
  rng = np.random.default_rng(height * width)
  y, x = np.mgrid[0:height, 0:width] / max(height, width)
  base = np.stack([127 + 90 * np.sin(2 * np.pi * (x + c * y) + c) for c in range(3)], -1)
  image = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
  image = Image.fromarray(image)
  buffer = io.BytesIO()
  (image.convert(mode) if mode != "RGB" else image).save(buffer, format="JPEG", quality=90, **save)
  return buffer.getvalue()


def whole_then_cut(data, window, denom, channels):
  flags = _REDUCED[denom] | (cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE)
  image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
  image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if channels == 3 else image[..., None]
  left, top, right, bottom = window
  return image[top:bottom, left:right].astype(np.int16)


@pytest.fixture(scope="module")
def library():
  library = cropped_decode.load()
  assert library is not None  # the test machines have a compiler and libjpeg-turbo's development files
  return library


@pytest.mark.parametrize("save", [{}, {"subsampling": 0}, {"progressive": True}], ids=["4:2:0", "4:4:4", "progressive"])
def test_the_window_equals_the_whole_decode_cut_at_every_scale(library, save):
  data = textured_jpeg(203, 317, **save)
  for denom in (1, 2, 4, 8):
    width, height = -(-317 // denom), -(-203 // denom)
    # Unaligned, aligned to the 16-pixel blocks, at an edge, one pixel, the whole image.
    for window in [(3, 5, width // 2 + 1, height // 2 + 3), (16 // denom, 8, 32 // denom + 2, 9),
                   (width // 3, height // 4, width, height), (1, 2, 2, 3), (0, 0, width, height)]:
      for channels in (3, 1):
        got = cropped_decode.decode(library, data, window, denom, channels).astype(np.int16)
        expected = whole_then_cut(data, window, denom, channels)
        assert got.shape == expected.shape == (window[3] - window[1], window[2] - window[0], channels)
        # Bit-exact, window edges included (OpenCV bundles its own libjpeg-turbo build).
        assert np.array_equal(got, expected), (denom, window)


def test_grey_jpegs_decode_to_rgb_and_cmyk_falls_back_to_opencv(library):
  grey = textured_jpeg(64, 48, mode="L")
  rgb = cropped_decode.decode(library, grey, (0, 0, 48, 64), 1, 3)
  assert rgb.shape == (64, 48, 3) and (rgb[..., 0] == rgb[..., 2]).all()
  cmyk = textured_jpeg(64, 48, mode="CMYK")
  with pytest.raises(ValueError, match="libjpeg: Unsupported color conversion"):
    cropped_decode.decode(library, cmyk, (0, 0, 48, 64), 1, 3)
  out = jpeg.decode_crop(cmyk, (0, 0, 48, 64), 48, 3)  # OpenCV reads it
  expected = np.asarray(Image.open(io.BytesIO(cmyk)).convert("RGB"), np.int16)
  assert out.shape == (64, 48, 3) and np.abs(out - expected).mean() < 3.0


def test_bad_data_and_windows_raise_with_the_reason(library):
  data = textured_jpeg(40, 40)
  with pytest.raises(ValueError, match="window 10x10 at \\(35, 0\\) outside the 40x40 image at 1/1"):
    cropped_decode.decode(library, data, (35, 0, 45, 10), 1, 3)
  with pytest.raises(ValueError, match="libjpeg: "):
    cropped_decode.decode(library, data[:2] + b"\x00" * 200, (0, 0, 4, 4), 1, 3)
  with pytest.raises(ValueError, match="could not be decoded"):  # OpenCV cannot read it either
    jpeg.decode_crop(data[:2] + b"\x00" * 200, (0, 0, 4, 4), 4, 3, image_wh=(40, 40))


def test_without_the_decoder_opencv_gives_the_same_crops(monkeypatch):
  data = textured_jpeg(300, 400)
  rng = np.random.default_rng(0)
  boxes = [jpeg.inception_box((400, 300), rng, (0.08, 1.0), (3 / 4, 4 / 3)) for _ in range(10)]
  cropped = [jpeg.crop_resize(data, box, 64, 3, mirror=False).astype(np.int16) for box in boxes]
  monkeypatch.setattr(cropped_decode, "load", lambda: None)
  whole = [jpeg.crop_resize(data, box, 64, 3, mirror=False).astype(np.int16) for box in boxes]
  for a, b in zip(cropped, whole):
    assert a.shape == b.shape == (64, 64, 3) and np.abs(a - b).mean() < 0.1


def test_exif_orientation_is_ignored_on_both_paths(monkeypatch):
  # The crop box comes from the header's (unrotated) size, so neither decoder may rotate the pixels.
  exif = Image.Exif()
  exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
  buffer = io.BytesIO()
  Image.open(io.BytesIO(textured_jpeg(40, 64))).save(buffer, format="JPEG", quality=90, exif=exif)
  data = buffer.getvalue()
  cropped = jpeg.decode_crop(data, (0, 0, 64, 40), 40, 3)
  monkeypatch.setattr(cropped_decode, "load", lambda: None)
  whole = jpeg.decode_crop(data, (0, 0, 64, 40), 40, 3)
  assert cropped.shape == whole.shape == (40, 64, 3) and np.array_equal(cropped, whole)


def test_the_package_ships_the_decoder_source():
  pyproject = pathlib.Path(__file__).parents[2] / "pyproject.toml"
  patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["cnnjax.data"]
  assert any(fnmatch.fnmatch(cropped_decode.SOURCE.name, pattern) for pattern in patterns)
