"""A trained classifier's inference function as a `jax.export` file: runs with JAX alone, any batch size.

The file holds the StableHLO program with the weights inside; its batch
dimension is symbolic. Reload it without cnnjax:

  exported = jax.export.deserialize(bytearray(open(path, "rb").read()))
  logits = exported.call(images)  # images: (N, H, W, C) in the exported dtype
"""

import os
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.data.augment import normalize
from cnnjax.models import layers


def export_classifier(
    model: nn.Module,
    variables: dict,
    image_shape: Sequence[int],
    path: str,
    *,
    mean: Any = None,
    std: Any = None,
    input_dtype: Any = jnp.uint8,
    platforms: Sequence[str] | None = None,
) -> str:
  """Writes `images (b, H, W, C) -> logits (b, classes)` (float32) to `path` and returns the path.

  Args:
    model, variables: the classifier and its `params` (and `batch_stats`), applied with `train=False`.
    image_shape: (H, W, C) of one image.
    mean, std: per-channel normalisation in [0, 1] units, compiled into the program
      (uint8 pixels are divided by 255 first); None feeds the images to the model as they are.
    input_dtype: the images' dtype in the file's signature.
    platforms: where the file may run ('cpu', 'cuda', 'tpu'); default: this process's backend.
  """
  if len(image_shape) != 3 or any(int(d) < 1 for d in image_shape):
    raise ValueError(f"image_shape={tuple(image_shape)}: expected (H, W, C) of positive sizes")
  if (mean is None) != (std is None):
    raise ValueError("mean and std: give both (normalise in the file) or neither")
  variables = jax.tree_util.tree_map(np.asarray, jax.device_get(variables))

  def infer(images: jax.Array) -> jax.Array:
    x = normalize(images, mean, std) if mean is not None else images.astype(jnp.float32)
    return model.apply(variables, x, train=False).astype(jnp.float32)

  batch, = jax.export.symbolic_shape("batch")
  spec = jax.ShapeDtypeStruct((batch, *map(int, image_shape)), jnp.dtype(input_dtype))
  with layers.stock_flax():  # no cnnjax kernel (FFI custom call) in a file that leaves this process
    exported = jax.export.export(jax.jit(infer), platforms=platforms)(spec)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "wb") as f:
    f.write(exported.serialize())
  return path


def load_exported(path: str) -> jax.export.Exported:
  """The `jax.export.Exported` in `path`; call it with `.call(images)`."""
  with open(path, "rb") as f:
    return jax.export.deserialize(bytearray(f.read()))
