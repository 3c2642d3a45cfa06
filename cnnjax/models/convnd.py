"""Small conv nets over sequences (1D) and volumes (3D), e.g. signals, CT scans, video clips."""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnjax.models.layers import ConvBlock, check_input, expected_channels, global_avg_pool, max_pool
from cnnjax.models.registry import register


class ConvNetND(nn.Module):
  """Blocks of conv + BN + ReLU + 2x max pool over `ndim` spatial axes, global average pool, `fc`.

  Input is channels-last: (N, L, C) for ndim=1, (N, D, H, W, C) for ndim=3.
  Pools use 'SAME' padding, so any size >= 1 works.
  """
  ndim: int
  num_classes: int = 10
  features: Sequence[int] = (32, 64, 128)
  kernel_size: int = 3
  batch_norm: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    check_input(x, rank=self.ndim + 2, channels=expected_channels(self, "block1/conv"))
    window = (2,) * self.ndim
    for i, features in enumerate(self.features, start=1):
      x = ConvBlock(features, (self.kernel_size,) * self.ndim, batch_norm=self.batch_norm,
                    dtype=self.dtype, name=f"block{i}")(x, train)
      x = max_pool(x, window, strides=window, padding="SAME")
    return nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(global_avg_pool(x))


register("convnet1d")(functools.partial(ConvNetND, ndim=1, kernel_size=5))
register("convnet3d")(functools.partial(ConvNetND, ndim=3, features=(16, 32, 64)))
