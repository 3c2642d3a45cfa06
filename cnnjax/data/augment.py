"""Jit-able, key-driven data augmentation, composed from a config list, plus normalisation and ten-crop.

Every op is `op(key, image, **params) -> image` on ONE float32 HWC image with
values in [0, 1] (uint8 / 255, before `normalize`); no op clips its output.
`build(spec)` turns a config list such as
`['flip_lr', {'name': 'random_crop', 'pad': 4}, {'name': 'rotate', 'max_degrees': 10}]`
into `fn(key, images) -> images` over a batch, each example with its own key.
"""

from collections.abc import Callable, Mapping, Sequence
import inspect
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Op = Callable[..., Array]


def flip_lr(key: Array, image: Array, p: float = 0.5) -> Array:
  """Mirrors the image left-right (`image[:, ::-1]`) with probability p."""
  return jnp.where(jax.random.bernoulli(key, p), image[:, ::-1], image)


def flip_ud(key: Array, image: Array, p: float = 0.5) -> Array:
  """Mirrors the image top-bottom (`image[::-1]`) with probability p."""
  return jnp.where(jax.random.bernoulli(key, p), image[::-1], image)


def random_crop(key: Array, image: Array, pad: int = 4, size: int | Sequence[int] | None = None) -> Array:
  """Zero-pads every side by `pad`, then takes a uniformly placed window of `size` (default: the input size).

  CIFAR's augmentation is pad=4 on 32x32; AlexNet's 224 crops of 256 images are pad=0, size=224.
  """
  h, w, c = image.shape
  ch, cw = _pair("size", size if size is not None else (h, w))
  if pad < 0 or ch > h + 2 * pad or cw > w + 2 * pad:
    raise ValueError(f"random_crop: size {(ch, cw)} must fit the padded image {(h + 2 * pad, w + 2 * pad)} (pad={pad})")
  padded = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)))
  ky, kx = jax.random.split(key)
  y = jax.random.randint(ky, (), 0, h + 2 * pad - ch + 1)
  x = jax.random.randint(kx, (), 0, w + 2 * pad - cw + 1)
  return jax.lax.dynamic_slice(padded, (y, x, 0), (ch, cw, c))


def rotate(key: Array, image: Array, max_degrees: float = 10.0, min_degrees: float | None = None,
           mode: str = "constant") -> Array:
  """Rotates about the centre by an angle uniform in [min_degrees, max_degrees] (min defaults to -max).

  Positive angles turn the picture counter-clockwise, as `np.rot90` does; bilinear sampling,
  outside pixels filled per `mode` ('constant' = 0, 'nearest', 'reflect', 'mirror', 'wrap').
  """
  theta = jnp.deg2rad(_uniform(key, min_degrees, max_degrees))
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  # Maps output (row, col) offsets from the centre to input offsets.
  return affine(image, jnp.array([[cos, sin], [-sin, cos]]), mode=mode)


def shear(key: Array, image: Array, max_degrees: float = 10.0, min_degrees: float | None = None,
          mode: str = "constant") -> Array:
  """Shears about the centre along x and along y, each by an angle uniform in [min_degrees, max_degrees]."""
  kx, ky = jax.random.split(key)
  tx = jnp.tan(jnp.deg2rad(_uniform(kx, min_degrees, max_degrees)))
  ty = jnp.tan(jnp.deg2rad(_uniform(ky, min_degrees, max_degrees)))
  return affine(image, jnp.array([[1.0, ty], [tx, 1.0]]), mode=mode)


def warp(key: Array, image: Array, strength: float = 2.0, grid: int = 4, mode: str = "constant") -> Array:
  """Local elastic warping: a smooth random displacement field of about `strength` pixels at most.

  Displacements uniform in [-strength, strength] on a `grid` x `grid` lattice are
  interpolated (bicubic) to every pixel, which then samples the input bilinearly.
  """
  if not isinstance(grid, (int, np.integer)) or grid < 1:
    raise ValueError(f"warp: grid must be a positive int, got {grid!r}")
  h, w, _ = image.shape
  coarse = jax.random.uniform(key, (2, grid, grid), minval=-1.0, maxval=1.0)
  field = strength * jax.image.resize(coarse, (2, h, w), method="cubic")
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
  return sample(image, rows + field[0], cols + field[1], mode=mode)


def colour_shift(key: Array, image: Array, max_offset: float = 0.1, max_scale: float = 0.1) -> Array:
  """Per channel: `x * (1 + s) + o` with s uniform in [-max_scale, max_scale], o in [-max_offset, max_offset]."""
  c = image.shape[-1]
  ks, ko = jax.random.split(key)
  scale = 1.0 + jax.random.uniform(ks, (c,), minval=-max_scale, maxval=max_scale)
  offset = jax.random.uniform(ko, (c,), minval=-max_offset, maxval=max_offset)
  return image * scale + offset


def pca_colour(key: Array, image: Array, eigvals: Any, eigvecs: Any, std: float = 0.1) -> Array:
  """AlexNet's PCA colour augmentation: adds `eigvecs @ (alpha * eigvals)` to every pixel, alpha ~ N(0, std^2).

  Args:
    key: one draw of alpha (one per channel) for the whole image.
    image: (H, W, C) float image in [0, 1].
    eigvals: (C,) eigenvalues of the C x C pixel covariance, as in the paper (not their square roots).
    eigvecs: (C, C) matrix whose columns are the matching eigenvectors; see `pca_colour_stats`.
    std: standard deviation of alpha (0.1 in the paper).
  """
  eigvals, eigvecs = jnp.asarray(eigvals, jnp.float32), jnp.asarray(eigvecs, jnp.float32)
  c = image.shape[-1]
  if eigvals.shape != (c,) or eigvecs.shape != (c, c):
    raise ValueError(f"pca_colour: eigvals/eigvecs must have shapes ({c},)/({c}, {c}) for {c} channels, "
                     f"got {eigvals.shape}/{eigvecs.shape}")
  alpha = std * jax.random.normal(key, (c,))
  return image + eigvecs @ (alpha * eigvals)


def pca_colour_stats(images: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
  """Eigen-decomposition of the covariance of pixel colours (every pixel a sample), for `pca_colour`.

  Args:
    images: (N, H, W, C) uint8 (scaled by 1/255) or float in [0, 1].
    chunk: images per accumulation step (keeps memory flat for large sets).

  Returns:
    (eigvals (C,), eigvecs (C, C)) float32, eigenvalues in decreasing order, eigenvectors as columns.
  """
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
  c = images.shape[-1]
  scale = 1.0 / 255.0 if np.issubdtype(images.dtype, np.integer) else 1.0
  total, outer, count = np.zeros(c), np.zeros((c, c)), 0
  for start in range(0, len(images), chunk):
    pixels = images[start:start + chunk].reshape(-1, c).astype(np.float64) * scale
    total += pixels.sum(0)
    outer += pixels.T @ pixels
    count += len(pixels)
  mean = total / count
  cov = (outer - count * np.outer(mean, mean)) / (count - 1)
  eigvals, eigvecs = np.linalg.eigh(cov)
  order = np.argsort(eigvals)[::-1]
  return eigvals[order].astype(np.float32), eigvecs[:, order].astype(np.float32)


def affine(image: Array, matrix: Array, mode: str = "constant") -> Array:
  """Resamples an image through a 2x2 linear map about its centre: input = matrix @ (output - centre) + centre.

  Coordinates are (row, col); shared by `rotate` and `shear`.
  """
  h, w, _ = image.shape
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) - cy, jnp.arange(w, dtype=jnp.float32) - cx,
                            indexing="ij")
  return sample(image, matrix[0, 0] * rows + matrix[0, 1] * cols + cy,
                matrix[1, 0] * rows + matrix[1, 1] * cols + cx, mode=mode)


def sample(image: Array, rows: Array, cols: Array, mode: str = "constant") -> Array:
  """Bilinear sampling of every channel at fractional (rows, cols), each of shape (H', W')."""
  channels = jnp.moveaxis(image, -1, 0)
  out = jax.vmap(lambda ch: jax.scipy.ndimage.map_coordinates(ch, [rows, cols], order=1, mode=mode))(channels)
  return jnp.moveaxis(out, 0, -1)


OPS: dict[str, Op] = {
    "flip_lr": flip_lr,
    "flip_ud": flip_ud,
    "random_crop": random_crop,
    "rotate": rotate,
    "shear": shear,
    "warp": warp,
    "colour_shift": colour_shift,
    "pca_colour": pca_colour,
}


def build(spec: Sequence[str | Mapping[str, Any]]) -> Callable[[Array, Array], Array]:
  """Composes ops from a config list into `fn(key, images) -> images` over a batch.

  Args:
    spec: op names (`'flip_lr'`) or dicts `{'name': ..., **params}` (ConfigDicts work), applied in order.

  Returns:
    A jit-able function of a key and (N, H, W, C) images (uint8 is scaled by 1/255) that returns
    float32 images, augmenting each example with its own key; an empty spec only converts.
  """
  if isinstance(spec, str):
    raise ValueError(f"spec must be a list of ops, got the string {spec!r}; write [{spec!r}]")
  ops = [_parse(i, item) for i, item in enumerate(spec or [])]

  def one(key: Array, image: Array) -> Array:
    for k, (op, params) in zip(jax.random.split(key, max(len(ops), 1)), ops):
      image = op(k, image, **params)
    return image

  def fn(key: Array, images: Array) -> Array:
    if images.ndim != 4:
      raise ValueError(f"images must be a (N, H, W, C) batch, got shape {images.shape}")
    images = to_float(images)
    return jax.vmap(one)(jax.random.split(key, images.shape[0]), images)

  return fn


def to_float(images: Array) -> Array:
  """float32 images in [0, 1]: integer images are divided by 255, float ones are cast."""
  images = jnp.asarray(images)
  scale = 1.0 / 255.0 if jnp.issubdtype(images.dtype, jnp.integer) else 1.0
  return images.astype(jnp.float32) * scale


def normalize(images: Array, mean: Any, std: Any) -> Array:
  """`(images / 255 - mean) / std` as float32 for uint8 images; float images are taken as already in [0, 1].

  `mean` and `std` are per channel in [0, 1] units (e.g. CIFAR-10's (0.4914, 0.4822, 0.4465)).
  """
  if not isinstance(std, jax.Array) and np.any(np.asarray(std) <= 0):
    raise ValueError(f"std must be positive, got {std}")
  mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
  return (to_float(images) - mean) / std


def ten_crop(image: Array, size: int | Sequence[int]) -> Array:
  """The four corner crops and the centre crop, then the same five mirrored left-right: (10, h, w, C).

  The centre crop starts at ((H - h) // 2, (W - w) // 2).
  """
  h, w, _ = image.shape
  ch, cw = _pair("size", size)
  if ch > h or cw > w:
    raise ValueError(f"ten_crop: size {(ch, cw)} is larger than the image {(h, w)}")
  corners = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)]
  crops = jnp.stack([image[y:y + ch, x:x + cw] for y, x in corners])
  return jnp.concatenate([crops, crops[:, :, ::-1]])


def ten_crop_average(apply_fn: Callable[[Array], Array], images: Array, size: int | Sequence[int]) -> Array:
  """Averages `apply_fn` over the ten crops of every image: (N, H, W, C) -> the mean (N, ...) output.

  AlexNet averages softmax probabilities, so pass a function that returns them (or logits, by choice).
  """
  crops = jax.vmap(lambda im: ten_crop(im, size))(images)  # (N, 10, h, w, C)
  outputs = apply_fn(crops.reshape((-1,) + crops.shape[2:]))
  return outputs.reshape((images.shape[0], 10) + outputs.shape[1:]).mean(axis=1)


def _parse(index: int, item: str | Mapping[str, Any]) -> tuple[Op, dict[str, Any]]:
  """(op, params) from one spec entry, with the names checked before any compute."""
  if isinstance(item, str):
    name, params = item, {}
  elif isinstance(item, Mapping) or hasattr(item, "to_dict"):
    params = dict(item.to_dict() if hasattr(item, "to_dict") else item)
    name = params.pop("name", None)
  else:
    raise ValueError(f"augmentation spec[{index}] must be a name or a dict with 'name', got {item!r}")
  if name not in OPS:
    raise ValueError(f"unknown augmentation {name!r} in spec[{index}]; known: {sorted(OPS)}")
  accepted = list(inspect.signature(OPS[name]).parameters)[2:]
  unknown = sorted(set(params) - set(accepted))
  if unknown:
    raise ValueError(f"augmentation {name!r} got unknown parameters {unknown}; accepted: {accepted}")
  return OPS[name], params


def _uniform(key: Array, low: float | None, high: float) -> Array:
  low = -high if low is None else low
  if low > high:
    raise ValueError(f"min_degrees={low} must not exceed max_degrees={high}")
  return jax.random.uniform(key, (), minval=low, maxval=high)


def _pair(name: str, value: int | Sequence[int]) -> tuple[int, int]:
  pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
  if len(pair) != 2 or any(int(v) <= 0 for v in pair):
    raise ValueError(f"{name} must be a positive int or (height, width), got {value!r}")
  return int(pair[0]), int(pair[1])
