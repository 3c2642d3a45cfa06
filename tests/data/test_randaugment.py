"""RandAugment: each example gets one of the ops at the configured magnitude, jitted, per-example keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.data import augment, photometric, randaugment

IMAGES = np.random.default_rng(1).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)


def candidates(image, magnitude):
  """Every op's output for both signs, from the op definitions (not the branch table)."""
  f = magnitude / 10
  out = [image, photometric.posterize(image, 8 - round(4 * f)), photometric.solarize(image, 1 - f),
         photometric.autocontrast(image), photometric.equalize(image)]
  for sign in (1, -1):
    factor = 1 + sign * 0.9 * f
    out += [fn(image, factor) for fn in (photometric.brightness, photometric.saturation, photometric.contrast,
                                         photometric.sharpness)]
    pixels = sign * round(0.45 * f * 8)
    out += [photometric.translate(image, pixels, 0), photometric.translate(image, 0, pixels)]
    out += [augment.rotate(jax.random.PRNGKey(0), image, min_degrees=sign * 30 * f, max_degrees=sign * 30 * f)]
    out += [augment.affine(image, jnp.array([[1.0, 0.0], [sign * 0.3 * f, 1.0]])),
            augment.affine(image, jnp.array([[1.0, sign * 0.3 * f], [0.0, 1.0]]))]
  return jnp.stack(out)


def test_one_op_per_example_at_the_magnitude():
  magnitude = 7
  out = np.asarray(jax.jit(randaugment.build(1, magnitude))(jax.random.PRNGKey(3), IMAGES))
  assert out.shape == IMAGES.shape and out.dtype == np.float32
  options = np.asarray(jax.jit(jax.vmap(lambda image: candidates(image, magnitude)))(IMAGES / np.float32(255)))
  chosen = set()
  for result, option in zip(out, options):
    errors = np.abs(option - result).reshape(len(option), -1).max(axis=1)
    assert errors.min() < 1e-5, "the result is none of the ops"
    chosen.add(int(np.argmin(errors)))
  assert len(chosen) > 3, "every example should draw its own op"


def test_two_ops_trace_to_the_batch_shape():
  out = jax.eval_shape(randaugment.build(2, 9), jax.random.PRNGKey(0), IMAGES)
  assert out.shape == IMAGES.shape and out.dtype == jnp.float32


def test_bad_arguments():
  with pytest.raises(ValueError, match="num_ops=0"):
    randaugment.build(0, 9)
  with pytest.raises(ValueError, match="magnitude=11"):
    randaugment.build(2, 11)
  with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
    randaugment.build(1, 5)(jax.random.PRNGKey(0), IMAGES[0])
