"""LeNet-5 (LeCun et al. 1998) in its modern and its classic form."""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnjax.models.layers import (Conv, avg_pool, check_choice, check_feature_map, check_input, expected_channels,
                                  max_pool)
from cnnjax.models.registry import register


def scaled_tanh(x: jnp.ndarray) -> jnp.ndarray:
  """LeCun's squashing function 1.7159 tanh(2x/3) (1998, appendix A)."""
  return 1.7159 * jnp.tanh(2.0 * x / 3.0)


_ACTIVATIONS = {"relu": nn.relu, "tanh": scaled_tanh}
_POOLS = {"max": max_pool, "avg": avg_pool}


class LeNet5(nn.Module):
  """conv1 (6@5x5) -> pool -> conv2 (16@5x5) -> pool -> fc1 (120) -> fc2 (84) -> fc3.

  On 32x32 inputs fc1 sees a 5x5x16 map, which makes it the same layer as the
  paper's C5 convolution. The classic form keeps C3 fully connected to S2
  (no sparse connection table), pools by plain averaging (no trainable
  coefficient) and ends in a dense layer instead of RBF units.
  """
  num_classes: int = 10
  activation: str = "relu"  # 'relu' | 'tanh' (LeCun's scaled tanh)
  pool: str = "max"  # 'max' | 'avg'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    del train  # no BatchNorm or dropout
    check_choice("activation", self.activation, tuple(_ACTIVATIONS))
    check_choice("pool", self.pool, tuple(_POOLS))
    check_input(x, rank=4, channels=expected_channels(self, "conv1"), min_size=16)
    act, pool = _ACTIVATIONS[self.activation], _POOLS[self.pool]
    input_shape = x.shape
    for i, features in enumerate((6, 16), start=1):
      x = Conv(features, (5, 5), padding="VALID", dtype=self.dtype, name=f"conv{i}")(x)
      x = pool(act(x), (2, 2), strides=(2, 2))
    check_feature_map(self, x, "fc1", input_shape)
    x = x.reshape(x.shape[0], -1)
    x = act(nn.Dense(120, dtype=self.dtype, name="fc1")(x))
    x = act(nn.Dense(84, dtype=self.dtype, name="fc2")(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="fc3")(x)


register("lenet5")(LeNet5)
register("lenet5_classic")(functools.partial(LeNet5, activation="tanh", pool="avg"))
