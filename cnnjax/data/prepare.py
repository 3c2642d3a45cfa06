"""Preparing images for a model on device: channel statistics, normalisation and augmentation factories."""

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.data import augment as augment_lib

Batch = dict[str, Any]


def image_channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std (at least 1e-3) of uint8 images `[..., C]`, in [0, 1] units."""
  images = np.asarray(images, np.float64) / 255.0
  axes = tuple(range(images.ndim - 1))
  return images.mean(axis=axes).astype(np.float32), np.maximum(images.std(axis=axes), 1e-3).astype(np.float32)


def make_preprocess(mean: np.ndarray, std: np.ndarray, dtype: Any = jnp.float32) -> Callable[[Batch], Batch]:
  """uint8 images -> normalised floats in the compute dtype, on device."""

  def preprocess(batch: Batch) -> Batch:
    return {**batch, "image": augment_lib.normalize(batch["image"], mean, std).astype(dtype)}

  return preprocess


def make_augment_fn(
    mean: np.ndarray, std: np.ndarray, spec: Sequence = (), dtype: Any = jnp.float32
) -> Callable[[jax.Array, Batch], Batch]:
  """Augments each example with its own key (`cnnjax.data.augment.build(spec)`), then normalises."""
  augment = augment_lib.build(spec)

  def augment_fn(key: jax.Array, batch: Batch) -> Batch:
    images = augment_lib.normalize(augment(key, batch["image"]), mean, std)
    return {**batch, "image": images.astype(dtype)}

  return augment_fn
