"""Image classification on top of `fit`: preprocessing, the loss, and test-set evaluation."""

from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from cnnjax.data import augment as augment_lib
from cnnjax.data import randaugment as randaugment_lib
from cnnjax.data.pipeline import prefetch_to_mesh
from cnnjax.train import parallel
from cnnjax.train.state import TrainState
from cnnjax.train.step import Batch, make_eval_step


def channel_stats(source: Sequence[dict], *, limit: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std of the first `limit` records' images, in [0, 1] units."""
  return image_channel_stats(np.stack([source[i]["image"] for i in range(min(len(source), limit))]))


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


def _main_and_aux(outputs: Any) -> tuple[jax.Array, tuple[jax.Array, ...]]:
  # GoogLeNet with auxiliary classifiers returns (logits, aux1, aux2) when training.
  if isinstance(outputs, (tuple, list)):
    return outputs[0], tuple(outputs[1:])
  return outputs, ()


def cross_entropy_loss(
    num_classes: int, *, label_smoothing: float = 0.0, aux_weight: float = 0.3
) -> Callable[[Any, Batch], tuple[jax.Array, dict]]:
  """Softmax cross-entropy, plus `aux_weight` times each auxiliary head's.

  The targets are `batch['targets']` (soft labels, e.g. mixed by mixup/CutMix)
  where present, else one-hot `batch['label']`; the accuracy reads `batch['label']`.
  """

  def xent(logits: jax.Array, targets: jax.Array) -> jax.Array:
    targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()

  def loss_fn(outputs: Any, batch: Batch) -> tuple[jax.Array, dict]:
    logits, aux = _main_and_aux(outputs)
    targets = batch["targets"] if "targets" in batch else jax.nn.one_hot(batch["label"], num_classes)
    main = xent(logits, targets)
    loss = main + aux_weight * sum(xent(a, targets) for a in aux)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
    return loss, {"accuracy": accuracy, "error": 1.0 - accuracy}

  return loss_fn


def _sums(outputs: Any, batch: Batch) -> dict[str, jax.Array]:
  logits, _ = _main_and_aux(outputs)
  mask = batch["mask"].astype(jnp.float32)
  xent = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch["label"])
  return {
      "correct": jnp.sum((jnp.argmax(logits, -1) == batch["label"]) * mask),
      "loss": jnp.sum(xent * mask),
      "count": jnp.sum(mask),
  }


def make_evaluator(
    batches: Callable[[], Iterable[Batch]], mesh: Mesh, preprocess: Callable[[Batch], Batch], *, prefix: str = "test"
) -> Callable[[TrainState], dict[str, float]]:
  """`state -> {prefix_accuracy, prefix_loss}` over one pass of `batches()` (padded, with `'mask'`)."""
  eval_step = parallel.compile_eval_step(make_eval_step(_sums, preprocess_fn=preprocess), mesh)

  def evaluate(state: TrainState) -> dict[str, float]:
    totals = None
    for batch in prefetch_to_mesh(iter(batches()), mesh):
      sums = eval_step(state, batch)
      totals = sums if totals is None else jax.tree_util.tree_map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    count = float(totals["count"])
    return {f"{prefix}_accuracy": float(totals["correct"]) / count, f"{prefix}_loss": float(totals["loss"]) / count}

  return evaluate
