"""Pure train and eval steps: `(state, batch) -> (state, metrics)` and `(state, batch) -> metrics`."""

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from cnnjax.train.state import TrainState

Batch = dict[str, jax.Array]


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""
LossFn = Callable[[Any, Batch], tuple[jax.Array, dict[str, jax.Array]]]
AugmentFn = Callable[[jax.Array, Batch], Batch]


def make_train_step(
    loss_fn: LossFn,
    *,
    augment_fn: AugmentFn | None = None,
    skip_nonfinite: bool = False,
    grad_accum_steps: int = 1,
    learning_rate_fn: Callable[[jax.Array], jax.Array] | None = None,
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
  """A train step over `loss_fn(outputs, batch) -> (loss, metrics)`; metrics gain `loss` and `grad_norm`.

  Args:
    loss_fn: the objective on the model's outputs for `batch['image']`, a mean over the batch.
    augment_fn: `(key, batch) -> batch`, run on device before the forward pass.
    skip_nonfinite: keep the old state when the loss or a gradient is not
      finite (metrics gain `skipped`); otherwise the update is applied and the
      loop stops on the non-finite loss.
    grad_accum_steps: k > 1 splits the (augmented) batch into k micro-batches
      whose gradients a `lax.scan` averages before the one update: the update of
      the whole batch with the memory of one micro-batch. Micro-batch i holds
      examples i, i + k, i + 2k, .. so each keeps its share on every device.
      BatchNorm normalises by each micro-batch's statistics, and its running
      averages take k updates per step.
    learning_rate_fn: the optimizer's schedule; metrics gain `learning_rate` (the step's rate).
  """
  if isinstance(grad_accum_steps, bool) or not isinstance(grad_accum_steps, int) or grad_accum_steps < 1:
    raise ValueError(f"grad_accum_steps={grad_accum_steps!r}: expected an integer >= 1")

  def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
    # One key per step, derived from the state: the same seed gives the same run, resumed or not.
    augment_key, dropout_key = jax.random.split(jax.random.fold_in(state.rng, state.step))
    if augment_fn is not None:
      batch = augment_fn(augment_key, batch)
    gradients = functools.partial(_gradients, state, loss_fn)
    if grad_accum_steps == 1:
      grads, batch_stats, loss, metrics = gradients(state.batch_stats, batch, dropout_key)
    else:
      grads, batch_stats, loss, metrics = _accumulate(gradients, state.batch_stats, batch, dropout_key,
                                                      grad_accum_steps)
    new_state = state.apply_gradients(grads, batch_stats)
    metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads)}
    if learning_rate_fn is not None:
      metrics["learning_rate"] = jnp.asarray(learning_rate_fn(state.step), jnp.float32)
    if skip_nonfinite:
      finite = jnp.isfinite(loss) & jnp.all(
          jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
      )
      new_state = jax.tree_util.tree_map(lambda new, old: jnp.where(finite, new, old), new_state, state)
      metrics["skipped"] = (~finite).astype(jnp.float32)
    return new_state, metrics

  return train_step


def _gradients(state: TrainState, loss_fn: LossFn, batch_stats: Any, batch: Batch, dropout_key: jax.Array):
  """(grads, new batch_stats, loss, metrics) of one forward and backward pass over `batch`."""

  def objective(params):
    variables = {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}
    outputs, updates = state.apply_fn(
        variables, batch["image"], train=True, rngs={"dropout": dropout_key}, mutable=["batch_stats"]
    )
    loss, metrics = loss_fn(outputs, batch)
    return loss, (metrics, updates.get("batch_stats", batch_stats))

  (loss, (metrics, batch_stats)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
  return grads, batch_stats, loss, metrics


def _accumulate(gradients: Callable, batch_stats: Any, batch: Batch, dropout_key: jax.Array, k: int):
  """The mean of `gradients` (and of loss and metrics) over k micro-batches, in one `lax.scan`."""
  size = jax.tree_util.tree_leaves(batch)[0].shape[0]
  if size % k:
    raise ValueError(f"a batch of {size} examples does not split into grad_accum_steps={k} micro-batches")
  # (size,) -> (size / k, k) keeps the leading axis split over the devices; swapped, step i reads column i.
  micro_batches = jax.tree_util.tree_map(lambda x: jnp.swapaxes(x.reshape((size // k, k) + x.shape[1:]), 0, 1), batch)

  def one(carry, inputs):
    sums, stats = carry
    micro_batch, index = inputs
    grads, stats, loss, metrics = gradients(stats, micro_batch, jax.random.fold_in(dropout_key, index))
    return (jax.tree_util.tree_map(jnp.add, sums, (grads, loss, metrics)), stats), None

  first = jax.tree_util.tree_map(lambda x: x[0], micro_batches)
  shapes = jax.eval_shape(gradients, batch_stats, first, dropout_key)
  zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), (shapes[0], shapes[2], shapes[3]))
  (sums, batch_stats), _ = jax.lax.scan(one, (zeros, batch_stats), (micro_batches, jnp.arange(k)))
  grads, loss, metrics = jax.tree_util.tree_map(lambda s: s / k, sums)
  return grads, batch_stats, loss, metrics


def make_eval_step(
    metric_fn: Callable[[Any, Batch], dict[str, jax.Array]], *, preprocess_fn: Callable[[Batch], Batch] | None = None
) -> Callable[[TrainState, Batch], dict[str, jax.Array]]:
  """An eval step: `metric_fn(outputs, batch)` returns sums over the batch (padding masked out)."""

  def eval_step(state: TrainState, batch: Batch) -> dict[str, jax.Array]:
    if preprocess_fn is not None:
      batch = preprocess_fn(batch)
    outputs = state.apply_fn(state.variables, batch["image"], train=False)
    return metric_fn(outputs, batch)

  return eval_step
