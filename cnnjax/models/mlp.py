"""A fully connected network: the baseline a ConvNet's parameter sharing and sparse connections are measured
against."""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnjax.models.layers import check_feature_map, check_input
from cnnjax.models.registry import register


class MLP(nn.Module):
  """Flatten -> Dense(h) + ReLU for each h in `hidden` -> Dense(num_classes); layers fc1, fc2, ...

  The default (one hidden layer of 60) has 62,110 parameters on 32x32x1 digits and 10
  classes, LeNet-5's capacity (61,706): `1024*60 + 60 + 60*10 + 10`.
  """
  num_classes: int = 10
  hidden: Sequence[int] = (60,)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    del train  # no BatchNorm or dropout
    check_input(x, rank=4)
    if any(not isinstance(h, int) or h < 1 for h in self.hidden):
      raise ValueError(f"hidden={tuple(self.hidden)!r}: expected positive layer widths")
    check_feature_map(self, x, "fc1", x.shape)
    x = x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.hidden, start=1):
      x = nn.relu(nn.Dense(width, dtype=self.dtype, name=f"fc{i}")(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, name=f"fc{len(self.hidden) + 1}")(x)


register("mlp")(MLP)
