"""Host preprocessing of variable-size (JPEG) images: Inception crop + flip for training, resize + centre crop for evaluation.

Both read the crop box from the image header first (the start-of-frame marker
of a JPEG), then let libjpeg-turbo decode only that window
(`cropped_decode`, as TensorFlow's `decode_and_crop_jpeg`) at the smallest DCT
scale (1/1, 1/2, 1/4, 1/8) that keeps the crop at least as large as the output,
and resample the crop straight to the output size with OpenCV's SIMD bilinear
resize (about 6x cheaper than Pillow's on these sizes; BUILD.md). Where the
cropped decoder cannot be built, OpenCV decodes the whole image at that scale
(`IMREAD_REDUCED_*`). Records hold the image as encoded bytes
(`sources.load(..., decode_images=False)`) or as a uint8 array (then only the
crop and resize run). Out comes uint8 `(size, size, channels)`, which
`pipeline.batches` fills into the batch.
"""

import dataclasses
import io
import math
from typing import Any

import cv2
import grain
import numpy as np
from PIL import Image

from cnnjax.data import cropped_decode

Record = dict[str, Any]
Box = tuple[float, float, float, float]  # left, top, right, bottom in pixels of the full image

# Parallelism comes from grain's worker processes; OpenCV's own thread pool would oversubscribe the cores.
cv2.setNumThreads(1)

# The evaluation resize of the ImageNet recipe: shorter side 256 for a 224 centre crop.
EVAL_RESIZE_RATIO = 256 / 224


@dataclasses.dataclass(frozen=True)
class InceptionCrop(grain.transforms.RandomMap):
  """Random-resized ("Inception") crop of `scale` of the area and aspect `ratio`, to `size`, then a random flip.

  The box is sampled as torchvision's `RandomResizedCrop`: up to 10 tries of an
  area fraction uniform in `scale` and a log-uniform aspect ratio in `ratio`,
  else the central crop of the clamped ratio.
  """
  size: int
  scale: tuple[float, float] = (0.08, 1.0)
  ratio: tuple[float, float] = (3 / 4, 4 / 3)
  flip: bool = True
  channels: int = 3
  key: str = "image"

  def __post_init__(self):
    _check_size(self.size)
    _check_range("scale", self.scale, 0.0, 1.0)
    _check_range("ratio", self.ratio, 0.0, math.inf)
    _check_channels(self.channels)

  def random_map(self, record: Record, rng: np.random.Generator) -> Record:
    data = record[self.key]
    wh = image_size(data)
    box = inception_box(wh, rng, self.scale, self.ratio)
    mirror = self.flip and rng.random() < 0.5
    return {**record, self.key: crop_resize(data, box, self.size, self.channels, mirror, wh)}


@dataclasses.dataclass(frozen=True)
class CentreCrop(grain.transforms.Map):
  """Resizes the shorter side to `resize` (default `size` * 256/224) and takes the central `size` square."""
  size: int
  resize: int | None = None
  channels: int = 3
  key: str = "image"

  def __post_init__(self):
    _check_size(self.size)
    if self.resize is not None and (not isinstance(self.resize, int) or self.resize < self.size):
      raise ValueError(f"resize must be an integer >= size={self.size} (the shorter side before the centre "
                       f"crop), got {self.resize!r}")
    _check_channels(self.channels)

  def map(self, record: Record) -> Record:
    data = record[self.key]
    wh = image_size(data)
    resize = self.resize or round(self.size * EVAL_RESIZE_RATIO)
    return {**record, self.key: crop_resize(data, centre_box(wh, self.size / resize), self.size, self.channels,
                                            False, wh)}


def image_size(data: Any) -> tuple[int, int]:
  """(width, height) of encoded image bytes (from the header only) or of a uint8 HWC / HW array."""
  if isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim in (2, 3):
    return data.shape[1], data.shape[0]
  data = _encoded(data)
  return _jpeg_size(data) or Image.open(io.BytesIO(data)).size


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
  """(width, height) from a JPEG's start-of-frame marker; None if `data` is no JPEG (Pillow then reads it).

  Walks the marker segments only, about 50x cheaper than Pillow's full header parse (tables included).
  """
  if not data.startswith(_SOI):
    return None
  pos = 2
  while pos + 9 <= len(data):
    if data[pos] != 0xFF:
      return None
    marker = data[pos + 1]
    if marker == 0xFF:  # fill byte
      pos += 1
      continue
    if marker in _SOF_MARKERS:
      return int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big")
    pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
  return None


_SOI = b"\xff\xd8"  # a JPEG's first marker, start of image
# Start-of-frame markers (baseline, extended, progressive, lossless; not DHT 0xC4, JPG 0xC8, DAC 0xCC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def inception_box(image_size: tuple[int, int], rng: np.random.Generator, scale: tuple[float, float],
                  ratio: tuple[float, float]) -> Box:
  """A random crop box of an image of `(width, height)`, as torchvision's `RandomResizedCrop.get_params`."""
  width, height = image_size
  area = width * height
  log_ratio = np.log(ratio)
  for _ in range(10):
    target_area = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(*log_ratio))
    w = round(math.sqrt(target_area * aspect))
    h = round(math.sqrt(target_area / aspect))
    if 0 < w <= width and 0 < h <= height:
      left = int(rng.integers(0, width - w + 1))
      top = int(rng.integers(0, height - h + 1))
      return left, top, left + w, top + h
  # Fallback: the whole image, cropped centrally to the nearest allowed aspect ratio.
  aspect = width / height
  w, h = (width, round(width / ratio[0])) if aspect < ratio[0] else (
      (round(height * ratio[1]), height) if aspect > ratio[1] else (width, height))
  left, top = (width - w) // 2, (height - h) // 2
  return left, top, left + w, top + h


def centre_box(image_size: tuple[int, int], fraction: float) -> Box:
  """The central square whose side is `fraction` of the shorter side of `(width, height)`."""
  width, height = image_size
  side = min(width, height) * fraction
  left, top = (width - side) / 2, (height - side) / 2
  return left, top, left + side, top + side


def decode_crop(data: Any, box: Box, size: int, channels: int,
                image_wh: tuple[int, int] | None = None) -> np.ndarray:
  """The pixels of `box` as uint8 HWC, decoded at the smallest JPEG scale (1, 1/2, 1/4, 1/8) that keeps the box's
  shorter side >= `size`.

  A JPEG is decoded only within the box's window where `cropped_decode` is available, else whole (OpenCV, which
  also reads what libjpeg-turbo refuses, e.g. CMYK) and then cut. Other formats are decoded whole; arrays are cut.
  `image_wh` is `image_size(data)` where the caller has it already.
  """
  width, height = image_wh or image_size(data)
  if isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim in (2, 3):
    return _window_of(_with_channels(data if data.ndim == 3 else data[..., None], channels), box, width, height)
  data = _encoded(data)
  left, top, right, bottom = box
  factor = next(f for f in (8, 4, 2, 1) if min(right - left, bottom - top) / f >= size or f == 1)
  library = cropped_decode.load() if data.startswith(_SOI) else None
  if library is not None:
    scaled_width, scaled_height = -(-width // factor), -(-height // factor)  # libjpeg's scaled size
    try:
      return cropped_decode.decode(library, data, _window(box, scaled_width / width, scaled_height / height,
                                                          scaled_width, scaled_height), factor, channels)
    except ValueError:
      pass  # OpenCV's whole decode below reads it or names the failure
  # As the header's size and libjpeg-turbo (and tf.data's decoders): no EXIF rotation, which OpenCV would apply.
  flags = (_REDUCED[factor] | cv2.IMREAD_IGNORE_ORIENTATION
           | (cv2.IMREAD_COLOR_RGB if channels == 3 else cv2.IMREAD_GRAYSCALE))
  image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
  if image is None:
    raise ValueError("the image bytes could not be decoded (corrupt or not an image)")
  return _window_of(image.reshape(*image.shape[:2], channels), box, width, height)


def crop_resize(data: Any, box: Box, size: int, channels: int, mirror: bool,
                image_wh: tuple[int, int] | None = None) -> np.ndarray:
  """`decode_crop` of `box`, resampled to size x size (flipped if `mirror`)."""
  crop = decode_crop(data, box, size, channels, image_wh)
  # Bilinear below a 2x reduction (the usual case once decoded at a reduced scale), area averaging beyond.
  interpolation = cv2.INTER_AREA if min(crop.shape[:2]) > 2 * size else cv2.INTER_LINEAR
  out = cv2.resize(crop, (size, size), interpolation=interpolation).reshape(size, size, channels)
  return cv2.flip(out, 1).reshape(size, size, channels) if mirror else out


def _window(box: Box, sx: float, sy: float, width: int, height: int) -> tuple[int, int, int, int]:
  """`box` scaled by (sx, sy) to whole pixels of a width x height image: at least one pixel, inside it."""
  left, top, right, bottom = box
  x0, y0 = min(int(left * sx), width - 1), min(int(top * sy), height - 1)
  return x0, y0, min(max(math.ceil(right * sx), x0 + 1), width), min(max(math.ceil(bottom * sy), y0 + 1), height)


def _window_of(image: np.ndarray, box: Box, width: int, height: int) -> np.ndarray:
  """The pixels of `box` (in pixels of a width x height image) of `image`, which may be that image scaled."""
  rows, columns = image.shape[:2]
  x0, y0, x1, y1 = _window(box, columns / width, rows / height, columns, rows)
  return image[y0:y1, x0:x1]


def _with_channels(image: np.ndarray, channels: int) -> np.ndarray:
  if image.shape[-1] == channels:
    return image
  code = cv2.COLOR_GRAY2RGB if channels == 3 else cv2.COLOR_RGB2GRAY
  return cv2.cvtColor(np.ascontiguousarray(image), code).reshape(*image.shape[:2], channels)


# IMREAD flags of libjpeg-turbo's DCT scaling (OpenCV decodes other formats whole and shrinks them).
_REDUCED = {1: 0, 2: 16, 4: 32, 8: 64}


def _encoded(data: Any) -> bytes:
  if isinstance(data, np.ndarray) and data.ndim == 0:
    data = data.item()
  if not isinstance(data, (bytes, np.bytes_)):
    raise ValueError(f"expected encoded image bytes or a uint8 HWC array, got {type(data).__name__} "
                     f"{getattr(data, 'dtype', '')}{getattr(data, 'shape', '')}")
  return bytes(data)


def _check_size(size: Any) -> None:
  if not isinstance(size, int) or size <= 0:
    raise ValueError(f"size must be a positive integer (output side in pixels), got {size!r}")


def _check_range(name: str, value: Any, low: float, high: float) -> None:
  ok = isinstance(value, (tuple, list)) and len(value) == 2 and low < value[0] <= value[1] <= high
  if not ok:
    raise ValueError(f"{name} must be a pair (min, max) with {low} < min <= max <= {high}, got {value!r}")


def _check_channels(channels: Any) -> None:
  if channels not in (1, 3):
    raise ValueError(f"channels must be 1 or 3, got {channels!r}")
