"""Image classification on top of `fit`: the loss and test-set evaluation."""

from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from cnnjax.data.pipeline import prefetch_to_mesh
from cnnjax.train import parallel
from cnnjax.train.state import TrainState
from cnnjax.train.step import Batch, make_eval_step


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
