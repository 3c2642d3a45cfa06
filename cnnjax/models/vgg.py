"""VGG (Simonyan & Zisserman 2014) with named feature taps for style transfer."""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnjax.models.layers import BatchNorm, Conv, check_choice, check_feature_map, check_input, expected_channels
from cnnjax.models.registry import register
from cnnjax.ops import avg_pool, max_pool

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
  (which keeps its bias, as in torchvision) is followed by `bn{b}_{i}`.
  """
  stage_sizes: Sequence[int]
  num_classes: int = 1000
  pool: str = "max"  # 'max' | 'avg' (Gatys et al. use average pooling)
  batch_norm: bool = False
  dropout_rate: float = 0.5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False,
               taps: Sequence[str] | None = None) -> jnp.ndarray | dict[str, jnp.ndarray]:
    """Logits, or with `taps` a dict of the named activations (conv taps are pre-BN/ReLU).

    With `taps` only the layers up to the deepest requested one run and the
    classifier is skipped.
    """
    check_choice("pool", self.pool, tuple(_POOLS))
    check_input(x, rank=4, channels=expected_channels(self, "conv1_1"),
                min_size=2 ** len(self.stage_sizes))
    input_shape = x.shape
    order = tap_names(self.stage_sizes)
    if taps is not None:
      taps = [taps] if isinstance(taps, str) else list(taps)
      unknown = [t for t in taps if t not in order]
      if unknown or not taps:
        raise ValueError(f"taps must be a non-empty list of names among {order}, got {taps!r}")
      last = max(order.index(t) for t in taps)
    out = {}

    def emit(name: str, value: jnp.ndarray) -> bool:
      """Records a requested tap; True once the deepest one is reached."""
      if taps is not None and name in taps:
        out[name] = value
      return taps is not None and order.index(name) == last

    for b, n in enumerate(self.stage_sizes, start=1):
      for i in range(1, n + 1):
        x = Conv(_WIDTHS[b - 1], (3, 3), padding="SAME", dtype=self.dtype,
                 name=f"conv{b}_{i}")(x)
        if emit(f"conv{b}_{i}", x):
          return out
        if self.batch_norm:
          x = BatchNorm(use_running_average=not train, dtype=self.dtype, name=f"bn{b}_{i}")(x)
        x = nn.relu(x)
        if emit(f"relu{b}_{i}", x):
          return out
      x = _POOLS[self.pool](x, (2, 2), strides=(2, 2))
      if emit(f"pool{b}", x):
        return out
    check_feature_map(self, x, "fc6", input_shape)
    x = x.reshape(x.shape[0], -1)
    for name in ("fc6", "fc7"):
      x = nn.relu(nn.Dense(4096, dtype=self.dtype, name=name)(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="fc8")(x)


_STAGES = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
for _depth, _sizes in _STAGES.items():
  register(f"vgg{_depth}")(functools.partial(VGG, stage_sizes=_sizes))
  register(f"vgg{_depth}_bn")(functools.partial(VGG, stage_sizes=_sizes, batch_norm=True))
