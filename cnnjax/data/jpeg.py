"""Host preprocessing of variable-size (JPEG) images: Inception crop + flip for training, resize + centre crop for evaluation.

Both read the crop box from the image header first, then let libjpeg-turbo
decode at the smallest DCT scale (1/1, 1/2, 1/4, 1/8) that keeps the crop at
least as large as the output (Pillow's `Image.draft`), and resample the crop
box straight to the output size in one pass: a 500x375 JPEG cropped to 224
is decoded at a quarter of its pixels whenever the crop allows it. Records
hold the image as encoded bytes (`sources.load(..., decode_images=False)`) or
as a uint8 array (then only the crop and resize run). Out comes uint8
`(size, size, channels)`, which `pipeline.batches` fills into the batch.
"""

import dataclasses
import io
import math
from typing import Any

import grain
import numpy as np
from PIL import Image

Record = dict[str, Any]
Box = tuple[float, float, float, float]  # left, top, right, bottom in pixels of the full image

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
    image = open_image(record[self.key])
    box = inception_box(image.size, rng, self.scale, self.ratio)
    mirror = self.flip and rng.random() < 0.5
    return {**record, self.key: crop_resize(image, box, self.size, self.channels, mirror)}


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
    image = open_image(record[self.key])
    resize = self.resize or round(self.size * EVAL_RESIZE_RATIO)
    return {**record, self.key: crop_resize(image, centre_box(image.size, self.size / resize), self.size,
                                            self.channels, False)}


def open_image(data: Any) -> Image.Image:
  """A lazily decoded PIL image of encoded bytes (only the header is read), or an image of a uint8 HWC array."""
  if isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim in (2, 3):
    return Image.fromarray(data[..., 0] if data.ndim == 3 and data.shape[-1] == 1 else data)
  if isinstance(data, np.ndarray) and data.ndim == 0:
    data = data.item()
  if not isinstance(data, (bytes, np.bytes_)):
    raise ValueError(f"expected encoded image bytes or a uint8 HWC array, got {type(data).__name__} "
                     f"{getattr(data, 'dtype', '')}{getattr(data, 'shape', '')}")
  return Image.open(io.BytesIO(bytes(data)))


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


def crop_resize(image: Image.Image, box: Box, size: int, channels: int, mirror: bool) -> np.ndarray:
  """Decodes `image` at the smallest DCT scale that keeps `box` >= `size`, resamples the box to size x size."""
  width, height = image.size
  left, top, right, bottom = box
  # Ask for the image scaled so the box just covers the output; JPEG picks the smallest scale at least as large.
  zoom = size / min(right - left, bottom - top)
  mode = "L" if channels == 1 else "RGB"
  if zoom < 1:
    image.draft(mode, (math.ceil(width * zoom), math.ceil(height * zoom)))
  sx, sy = image.size[0] / width, image.size[1] / height
  if image.mode != mode:
    image = image.convert(mode)
  out = image.resize((size, size), Image.BILINEAR, box=(left * sx, top * sy, right * sx, bottom * sy))
  if mirror:
    out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
  return np.asarray(out).reshape(size, size, channels)


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
