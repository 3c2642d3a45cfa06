"""The train state: parameters, BatchNorm statistics, optimizer state, step and key."""

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

  @property
  def variables(self) -> dict:
    """The collections `model.apply` takes."""
    return {"params": self.params, "batch_stats": self.batch_stats} if self.batch_stats else {"params": self.params}

  def apply_gradients(self, grads: Any, batch_stats: Any) -> "TrainState":
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    return self.replace(
        step=self.step + 1,
        params=optax.apply_updates(self.params, updates),
        batch_stats=batch_stats,
        opt_state=opt_state,
    )


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
) -> TrainState:
  """A fresh state; `variables` (e.g. pretrained ones) replace the random initialisation."""
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
  )
