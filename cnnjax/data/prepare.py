"""Preparing images for a model on device: channel statistics, normalisation and augmentation factories."""

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.data import augment as augment_lib
from cnnjax.data import randaugment as randaugment_lib

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
    mean: np.ndarray, std: np.ndarray, spec: Sequence = (), dtype: Any = jnp.float32, *,
    randaugment: tuple[int, float] | None = None, mix_fn: Callable[[jax.Array, Batch], Batch] | None = None,
) -> Callable[[jax.Array, Batch], Batch]:
  """Augments each example with its own key, then normalises.

  In order: `cnnjax.data.augment.build(spec)`, RandAugment with `(num_ops,
  magnitude)` when given, `mix_fn` (`cnnjax.data.mixing.make_mix_fn`: mixup /
  CutMix, adds `batch['targets']`) when given, normalisation.
  """
  augment = augment_lib.build(spec)
  rand_augment = randaugment_lib.build(*randaugment) if randaugment and randaugment[0] else None

  def augment_fn(key: jax.Array, batch: Batch) -> Batch:
    # Only the options that are on take keys of their own, so a run without them draws as before.
    images = augment(key, batch["image"])
    if rand_augment is not None:
      key, rand_key = jax.random.split(key)
      images = rand_augment(rand_key, images)
    if mix_fn is not None:
      key, mix_key = jax.random.split(key)
      batch = mix_fn(mix_key, {**batch, "image": images})
      images = batch["image"]
    return {**batch, "image": augment_lib.normalize(images, mean, std).astype(dtype)}

  return augment_fn
