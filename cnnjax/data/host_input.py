"""Host input of image classification: the per-record host transforms a config asks for, and channel statistics.

Fixed-size datasets need no host transform (their augmentation runs jitted on
the device). Variable-size ones are resized to `image_size`, or take the
ImageNet recipe: an Inception crop + flip for training and resize + centre crop
for evaluation, decoded at a reduced JPEG scale (`cnnjax.data.jpeg`). Channel
statistics come from a bounded, seeded sample, so start-up and memory do not
grow with the dataset.
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnjax.data import jpeg, views
from cnnjax.data.pipeline import Transform

CROPS = ("resize", "inception")


@dataclasses.dataclass(frozen=True)
class HostTransforms:
  """The transforms of the training and evaluation records, and whether the source must keep images encoded."""
  train: Transform | None
  eval: Transform | None
  encoded_images: bool


def host_transforms(
    image_size: int,
    *,
    crop: str = "resize",
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    eval_resize: int = 0,
    channels: int = 3,
) -> HostTransforms:
  """The host transforms of `crop` ('resize' or 'inception') at `image_size` (0: none, images kept as stored).

  'inception' trains on `jpeg.InceptionCrop(image_size, scale, ratio)` (with a
  flip) and evaluates on `jpeg.CentreCrop(image_size, eval_resize or
  image_size * 256/224)`, reading the images still encoded.
  """
  if crop not in CROPS:
    raise ValueError(f"crop={crop!r}: expected one of {CROPS}")
  if not isinstance(image_size, int) or image_size < 0:
    raise ValueError(f"image_size={image_size!r}: expected an integer >= 0 (0 keeps the stored size)")
  if crop == "resize":
    resize = views.resize_images(image_size) if image_size else None
    return HostTransforms(train=resize, eval=resize, encoded_images=False)
  if not image_size:
    raise ValueError("crop='inception' needs image_size > 0 (the side of the training crop)")
  return HostTransforms(
      train=jpeg.InceptionCrop(image_size, tuple(scale), tuple(ratio), channels=channels),
      eval=jpeg.CentreCrop(image_size, eval_resize or None, channels=channels),
      encoded_images=True,
  )


def sample_channel_stats(
    source: Sequence[dict[str, Any]],
    transform: Transform | None = None,
    *,
    count: int = 4096,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std (at least 1e-3), in [0, 1] units, of the images of at most `count` records.

  The records are all of them when the source has at most `count`, else a
  sample drawn with `seed`; they are read and reduced one at a time, so memory
  does not grow with the sample.
  """
  if not isinstance(count, int) or count <= 0:
    raise ValueError(f"count={count!r}: expected a positive number of records to sample")
  indices = _sample_indices(len(source), count, seed)
  total, total_sq, pixels = 0.0, 0.0, 0
  for index in indices:
    image = _apply(transform, source[int(index)])["image"]
    values = np.asarray(image, np.float64).reshape(-1, np.shape(image)[-1]) / 255.0
    total, total_sq, pixels = total + values.sum(0), total_sq + (values ** 2).sum(0), pixels + len(values)
  mean = total / pixels
  std = np.sqrt(np.maximum(total_sq / pixels - mean ** 2, 0.0))
  return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


def sample_images(source: Sequence[dict[str, Any]], transform: Transform | None = None, *, count: int = 512,
                  seed: int = 0) -> np.ndarray:
  """The images of at most `count` records (all of them, or a sample drawn with `seed`), stacked: (n, H, W, C)."""
  indices = _sample_indices(len(source), count, seed)
  return np.stack([np.asarray(_apply(transform, source[int(i)])["image"]) for i in indices])


def _sample_indices(n: int, count: int, seed: int) -> np.ndarray:
  """All of `range(n)` when n <= count, else `count` of them drawn with `seed`, in increasing order."""
  return np.arange(n) if n <= count else np.sort(np.random.default_rng(seed).choice(n, count, replace=False))


def _apply(transform: Transform | None, record: dict[str, Any]) -> dict[str, Any]:
  if transform is None:
    return record
  if hasattr(transform, "random_map"):
    raise ValueError("channel statistics need a deterministic transform (e.g. the evaluation one), "
                     f"got the random {type(transform).__name__}")
  return transform.map(record) if hasattr(transform, "map") else transform(record)
