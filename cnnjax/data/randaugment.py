"""RandAugment (Cubuk et al. 2020) on device: `num_ops` ops drawn per example, all at one `magnitude`.

The 14 ops and their ranges are torchvision's (`transforms.RandAugment`), with
the magnitude on the paper's 0..10 scale (m/10 of each op's largest change):
shear up to 0.3, translation up to 45% of the size, rotation up to 30 degrees,
enhance factors 1 +- 0.9, posterize to 8 - 4 m/10 bits, solarize above
1 - m/10; signed changes take a random sign. Images are float HWC in [0, 1].
Under `vmap` the per-example `lax.switch` runs every op on every image and
selects one (the price of a per-example choice on a SIMD device).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from cnnjax.data import augment, photometric

Array = jax.Array
Branch = Callable[[Array, Array], Array]


def _signed(key: Array, value: float) -> Array:
  return jnp.where(jax.random.bernoulli(key), value, -value)


def ops(magnitude: float) -> dict[str, Branch]:
  """`name -> fn(key, image)` at `magnitude` in [0, 10]; the key only draws signs."""
  if not 0 <= magnitude <= 10:
    raise ValueError(f"RandAugment magnitude={magnitude!r}: expected a number in [0, 10]")
  f = magnitude / 10.0

  def shear(axis: int) -> Branch:
    def op(key, image):
      s = _signed(key, 0.3 * f)
      matrix = jnp.array([[1.0, 0.0], [0.0, 1.0]]).at[1 - axis, axis].set(s)
      return augment.affine(image, matrix)
    return op

  def shift(axis: int) -> Branch:
    def op(key, image):
      pixels = _signed(key, jnp.round(0.45 * f * image.shape[axis])).astype(jnp.int32)
      return photometric.translate(image, pixels * (axis == 0), pixels * (axis == 1))
    return op

  def enhance(fn) -> Branch:
    return lambda key, image: fn(image, 1.0 + _signed(key, 0.9 * f))

  def rotate(key, image):
    theta = jnp.deg2rad(_signed(key, 30.0 * f))
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    return augment.affine(image, jnp.array([[cos, sin], [-sin, cos]]))

  bits = 8 - int(round(4 * f))
  return {
      "identity": lambda key, image: image,
      "shear_x": shear(0),
      "shear_y": shear(1),
      "translate_x": shift(1),
      "translate_y": shift(0),
      "rotate": rotate,
      "brightness": enhance(photometric.brightness),
      "saturation": enhance(photometric.saturation),
      "contrast": enhance(photometric.contrast),
      "sharpness": enhance(photometric.sharpness),
      "posterize": lambda key, image: photometric.posterize(image, bits),
      "solarize": lambda key, image: photometric.solarize(image, 1.0 - f),
      "autocontrast": lambda key, image: photometric.autocontrast(image),
      "equalize": lambda key, image: photometric.equalize(image),
  }


def build(num_ops: int, magnitude: float) -> Callable[[Array, Array], Array]:
  """`fn(key, images) -> images` over a (N, H, W, C) batch: each example draws its own `num_ops` ops."""
  if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 1:
    raise ValueError(f"RandAugment num_ops={num_ops!r}: expected an integer >= 1")
  branches = list(ops(magnitude).values())

  def one(key: Array, image: Array) -> Array:
    for k in jax.random.split(key, num_ops):
      k_choice, k_sign = jax.random.split(k)
      choice = jax.random.randint(k_choice, (), 0, len(branches))
      image = jax.lax.switch(choice, branches, k_sign, image)
    return image

  def fn(key: Array, images: Array) -> Array:
    if images.ndim != 4:
      raise ValueError(f"RandAugment: images must be a (N, H, W, C) batch, got shape {images.shape}")
    images = augment.to_float(images)
    return jax.vmap(one)(jax.random.split(key, images.shape[0]), images)

  return fn
