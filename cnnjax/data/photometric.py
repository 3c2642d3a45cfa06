"""Pillow's uint8 image operations (`ImageOps`, `ImageEnhance`) as jit-able functions, for RandAugment.

Each takes ONE float32 HWC image with values in [0, 1] (uint8 / 255) and, as
its uint8 original does, returns values clipped to [0, 1]. Ops defined on
grey levels (posterize, solarize, equalize) first round to the 256 levels of
uint8; the rest compute in float. Grey is ITU-R 601 luma, as Pillow's `L` mode.
"""

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
_LUMA = (0.299, 0.587, 0.114)
# ImageFilter.SMOOTH; NumPy, since importing must not start a JAX backend (jax.distributed comes first)
_SMOOTH = np.array([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], np.float32) / 13.0


def _levels(image: Array) -> Array:
  """The uint8 grey level (0..255, int32) of every value."""
  return jnp.round(jnp.clip(image, 0.0, 1.0) * 255.0).astype(jnp.int32)


def grey(image: Array) -> Array:
  """(H, W, 1) luma of an RGB image; a one-channel image is its own grey."""
  if image.shape[-1] == 1:
    return image
  if image.shape[-1] != 3:
    raise ValueError(f"grey: expected 1 or 3 channels, got an image of shape {image.shape}")
  return image @ jnp.array(_LUMA, image.dtype)[:, None]


def blend(degenerate: Array, image: Array, factor: Array | float) -> Array:
  """`Image.blend(degenerate, image, factor)` clipped: factor 0 gives `degenerate`, 1 the image."""
  return jnp.clip(degenerate + factor * (image - degenerate), 0.0, 1.0)


def posterize(image: Array, bits: int) -> Array:
  """`ImageOps.posterize`: keeps the `bits` high bits (1..8) of each uint8 value."""
  if not 1 <= bits <= 8:
    raise ValueError(f"posterize: bits={bits!r}, expected 1..8")
  return (_levels(image) & (0xFF ^ ((1 << (8 - bits)) - 1))).astype(jnp.float32) / 255.0


def solarize(image: Array, threshold: Array | float) -> Array:
  """`ImageOps.solarize`: inverts (`1 - x`) every value at or above `threshold` (in [0, 1] units)."""
  levels = _levels(image)
  return jnp.where(levels < threshold * 255.0, levels, 255 - levels).astype(jnp.float32) / 255.0


def equalize(image: Array) -> Array:
  """`ImageOps.equalize`: per channel, Pillow's histogram equalisation of the uint8 levels."""

  def channel(levels: Array) -> Array:
    hist = jnp.bincount(levels.ravel(), length=256)
    step = (jnp.sum(hist) - hist[jnp.max(levels)]) // 255  # the top level's pixels are left out
    cumulative = jnp.cumsum(hist) - hist  # pixels below each level
    lut = jnp.clip((step // 2 + cumulative) // jnp.maximum(step, 1), 0, 255)
    return jnp.where(step == 0, levels, lut[levels])

  levels = _levels(image)
  return jnp.moveaxis(jax.vmap(channel)(jnp.moveaxis(levels, -1, 0)), 0, -1).astype(jnp.float32) / 255.0


def autocontrast(image: Array) -> Array:
  """`ImageOps.autocontrast`: per channel, stretches [min, max] to [0, 1]; a flat channel is kept."""
  image = jnp.clip(image, 0.0, 1.0)
  low, high = image.min(axis=(0, 1)), image.max(axis=(0, 1))
  spread = high - low
  return jnp.where(spread > 0, (image - low) / jnp.where(spread > 0, spread, 1.0), image)


def brightness(image: Array, factor: Array | float) -> Array:
  """`ImageEnhance.Brightness`: blend with black."""
  return blend(jnp.zeros_like(image), image, factor)


def contrast(image: Array, factor: Array | float) -> Array:
  """`ImageEnhance.Contrast`: blend with the image's mean grey."""
  return blend(jnp.full_like(image, jnp.mean(grey(jnp.clip(image, 0.0, 1.0)))), image, factor)


def saturation(image: Array, factor: Array | float) -> Array:
  """`ImageEnhance.Color`: blend with the image's grey version."""
  return blend(jnp.broadcast_to(grey(image), image.shape), image, factor)


def sharpness(image: Array, factor: Array | float) -> Array:
  """`ImageEnhance.Sharpness`: blend with the image smoothed by `ImageFilter.SMOOTH` (borders kept)."""
  image = jnp.asarray(image)
  h, w, _ = image.shape
  smooth = jax.vmap(lambda ch: jax.scipy.signal.correlate2d(ch, _SMOOTH, mode="valid"), in_axes=-1, out_axes=-1)
  degenerate = image.at[1:h - 1, 1:w - 1].set(smooth(image))
  return blend(degenerate, image, factor)


def translate(image: Array, rows: Array | int, cols: Array | int) -> Array:
  """Moves the picture down by `rows` and right by `cols` whole pixels; uncovered pixels are 0."""
  h, w, _ = image.shape
  src_rows, src_cols = jnp.arange(h) - rows, jnp.arange(w) - cols
  inside = ((src_rows >= 0) & (src_rows < h))[:, None] & ((src_cols >= 0) & (src_cols < w))[None, :]
  moved = image[jnp.clip(src_rows, 0, h - 1)][:, jnp.clip(src_cols, 0, w - 1)]
  return jnp.where(inside[..., None], moved, 0.0)
