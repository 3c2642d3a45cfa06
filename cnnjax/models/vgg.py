"""VGG (Simonyan & Zisserman 2014), its ReLU and pool outputs sown by name (style transfer reads them)."""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnjax.models.layers import (BatchNorm, Conv, avg_pool, check_choice, check_feature_map, check_input,
                                  expected_channels, max_pool, scaled)
from cnnjax.models.registry import register

_WIDTHS = (64, 128, 256, 512, 512)
_POOLS = {"max": max_pool, "avg": avg_pool}


def tap_names(stage_sizes: Sequence[int]) -> list[str]:
  """Every tap name of a VGG with these stage sizes, in forward order."""
  names = []
  for b, n in enumerate(stage_sizes, start=1):
    for i in range(1, n + 1):
      names += [f"conv{b}_{i}", f"relu{b}_{i}"]
    names.append(f"pool{b}")
  return names


class VGG(nn.Module):
  """Five blocks of 3x3 convs (`conv{b}_{i}`), each ending in a 2x2/2 pool, then fc6..fc8.

  fc6 takes the NHWC flatten of the last pool (7x7x512 = 25088 inputs at
  224x224), so its size follows the input size. With `batch_norm` each conv
  (which keeps its bias, as in torchvision) is followed by `bn{b}_{i}`. Each
  ReLU and pool output is sown as `relu{b}_{i}` / `pool{b}` (read them, and the
  convs' pre-activations, with `cnnjax.models.intermediates`). With
  `features_only`, returns the last pool and has no classifier (a trunk, e.g.
  for style transfer). `width` multiplies `widths` and `hidden`.
  """
  stage_sizes: Sequence[int]
  num_classes: int = 1000
  widths: Sequence[int] = _WIDTHS  # per block
  hidden: int = 4096  # width of fc6 and fc7
  width: float = 1.0
  pool: str = "max"  # 'max' | 'avg' (Gatys et al. use average pooling)
  batch_norm: bool = False
  dropout_rate: float = 0.5
  features_only: bool = False
  final_pool: bool = True  # False: a trunk cut after its last conv block's ReLU (features_only only)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    check_choice("pool", self.pool, tuple(_POOLS))
    pools = len(self.stage_sizes) - (0 if self.final_pool or not self.features_only else 1)
    check_input(x, rank=4, channels=expected_channels(self, "conv1_1"), min_size=2 ** pools)
    input_shape = x.shape
    for b, n in enumerate(self.stage_sizes, start=1):
      for i in range(1, n + 1):
        x = Conv(scaled(self.widths[b - 1], self.width), (3, 3), padding="SAME", dtype=self.dtype, name=f"conv{b}_{i}")(x)
        if self.batch_norm:
          x = BatchNorm(use_running_average=not train, dtype=self.dtype, name=f"bn{b}_{i}")(x)
        x = nn.relu(x)
        self.sow("intermediates", f"relu{b}_{i}", x)
      if b == len(self.stage_sizes) and self.features_only and not self.final_pool:
        return x
      x = _POOLS[self.pool](x, (2, 2), strides=(2, 2))
      self.sow("intermediates", f"pool{b}", x)
    if self.features_only:
      return x
    check_feature_map(self, x, "fc6", input_shape)
    x = x.reshape(x.shape[0], -1)
    for name in ("fc6", "fc7"):
      x = nn.relu(nn.Dense(scaled(self.hidden, self.width), dtype=self.dtype, name=name)(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="fc8")(x)


_STAGES = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
for _depth, _sizes in _STAGES.items():
  register(f"vgg{_depth}")(functools.partial(VGG, stage_sizes=_sizes))
  register(f"vgg{_depth}_bn")(functools.partial(VGG, stage_sizes=_sizes, batch_norm=True))
