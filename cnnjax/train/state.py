"""The train state: parameters, their moving average, BatchNorm statistics, optimizer state, step and key."""

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct


class TrainState(struct.PyTreeNode):
  """Everything a train step reads and writes; a pytree, so it checkpoints and shards as one."""

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: optax.OptState
  rng: jax.Array
  apply_fn: Callable = struct.field(pytree_node=False)
  tx: optax.GradientTransformation = struct.field(pytree_node=False)
  # Exponential moving average of `params` ({} when `ema_decay` is 0): ema <- decay * ema + (1 - decay) * params
  # after every update, starting from the initial parameters.
  ema_params: Any = struct.field(default_factory=dict)
  ema_decay: float = struct.field(pytree_node=False, default=0.0)

  @property
  def variables(self) -> dict:
    """The collections `model.apply` takes."""
    return {"params": self.params, "batch_stats": self.batch_stats} if self.batch_stats else {"params": self.params}

  def apply_gradients(self, grads: Any, batch_stats: Any) -> "TrainState":
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    params = optax.apply_updates(self.params, updates)
    ema_params = optax.incremental_update(params, self.ema_params, 1.0 - self.ema_decay) if self.ema_decay else {}
    return self.replace(
        step=self.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state, ema_params=ema_params
    )

  def with_ema_params(self) -> "TrainState":
    """This state with the moving average in place of the parameters (for evaluation)."""
    if not self.ema_decay:
      raise ValueError("this state keeps no moving average of its parameters (ema_decay=0)")
    return self.replace(params=self.ema_params)


def init_variables(model: nn.Module, rng: jax.Array, sample_input: jax.Array) -> dict:
  """`model.init` in eval mode on one example shaped like `sample_input`.

  Compiled: one XLA program starts faster than running init op by op
  (LeNet-5 1.7 s vs 4.4 s, ResNet-20 3.8 s vs 5.3 s on 2 CPU cores).
  """
  init = jax.jit(functools.partial(model.init, train=False))
  return init({"params": rng, "dropout": rng}, jnp.zeros(sample_input[:1].shape, jnp.float32))


def create_train_state(
    model: nn.Module,
    tx: optax.GradientTransformation,
    rng: jax.Array,
    sample_input: jax.Array,
    variables: dict | None = None,
    *,
    ema_decay: float = 0.0,
) -> TrainState:
  """A fresh state; `variables` (e.g. pretrained ones) replace the random initialisation.

  `ema_decay` in (0, 1) also keeps a moving average of the parameters (see `TrainState.ema_params`).
  """
  if not 0.0 <= ema_decay < 1.0:
    raise ValueError(f"ema_decay={ema_decay!r}: expected a number in [0, 1) (0 keeps no moving average)")
  init_rng, step_rng = jax.random.split(rng)
  if variables is None:
    variables = init_variables(model, init_rng, sample_input)
  params = variables["params"]
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      batch_stats=variables.get("batch_stats", {}),
      opt_state=tx.init(params),
      rng=step_rng,
      apply_fn=model.apply,
      tx=tx,
      # A copy: the state is donated to the step, and one buffer cannot be donated twice.
      ema_params=jax.tree_util.tree_map(jnp.copy, params) if ema_decay else {},
      ema_decay=float(ema_decay),
  )
