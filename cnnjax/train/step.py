"""Pure train and eval steps: `(state, batch) -> (state, metrics)` and `(state, batch) -> metrics`."""

from typing import Any, Callable

import jax
import jax.numpy as jnp

from cnnjax.train.state import TrainState

Batch = dict[str, jax.Array]


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""
LossFn = Callable[[Any, Batch], tuple[jax.Array, dict[str, jax.Array]]]
AugmentFn = Callable[[jax.Array, Batch], Batch]


def make_train_step(
    loss_fn: LossFn, *, augment_fn: AugmentFn | None = None, skip_nonfinite: bool = False
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
  """A train step over `loss_fn(outputs, batch) -> (loss, metrics)`.

  Args:
    loss_fn: the objective on the model's outputs for `batch['image']`.
    augment_fn: `(key, batch) -> batch`, run on device before the forward pass.
    skip_nonfinite: keep the old state when the loss or a gradient is not
      finite (metrics gain `skipped`); otherwise the update is applied and the
      loop stops on the non-finite loss.
  """

  def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
    # One key per step, derived from the state: the same seed gives the same run, resumed or not.
    augment_key, dropout_key = jax.random.split(jax.random.fold_in(state.rng, state.step))
    if augment_fn is not None:
      batch = augment_fn(augment_key, batch)

    def objective(params):
      variables = {**state.variables, "params": params}
      outputs, updates = state.apply_fn(
          variables, batch["image"], train=True, rngs={"dropout": dropout_key}, mutable=["batch_stats"]
      )
      loss, metrics = loss_fn(outputs, batch)
      return loss, (metrics, updates.get("batch_stats", state.batch_stats))

    (loss, (metrics, batch_stats)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads, batch_stats)
    metrics = {**metrics, "loss": loss}
    if skip_nonfinite:
      finite = jnp.isfinite(loss) & jnp.all(
          jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
      )
      new_state = jax.tree_util.tree_map(lambda new, old: jnp.where(finite, new, old), new_state, state)
      metrics["skipped"] = (~finite).astype(jnp.float32)
    return new_state, metrics

  return train_step


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
