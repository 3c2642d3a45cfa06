"""Network in Network (Lin et al. 2013), its CIFAR-10 configuration."""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnjax.models.layers import ConvBlock, check_input, expected_channels, global_avg_pool, max_pool, scaled
from cnnjax.models.registry import register

# Per mlpconv block: (kernel of the spatial conv, widths of the spatial conv then its 1x1 convs).
_MLPCONVS = ((5, (192, 160, 96)), (5, (192, 192, 192)), (3, (192, 192)))


class NiN(nn.Module):
  """Three mlpconv blocks (a kxk conv, then 1x1 convs = a per-pixel MLP), global average pooling.

  Blocks 1 and 2 end in a 3x3/2 max pool and dropout. The last 1x1 conv has
  `num_classes` outputs and no ReLU (so logits can be negative); averaging its
  map over space gives the logits, with no dense layer at all. `width`
  multiplies the mlpconv channels.
  """
  num_classes: int = 10
  mlpconvs: Sequence[tuple[int, Sequence[int]]] = _MLPCONVS
  batch_norm: bool = True
  dropout_rate: float = 0.5
  width: float = 1.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    check_input(x, rank=4, channels=expected_channels(self, "mlpconv1_1/conv"))
    last = len(self.mlpconvs)
    for s, (k, widths) in enumerate(self.mlpconvs, start=1):
      for i, features in enumerate(widths, start=1):
        x = ConvBlock(scaled(features, self.width), (k, k) if i == 1 else (1, 1), batch_norm=self.batch_norm,
                      dtype=self.dtype, name=f"mlpconv{s}_{i}")(x, train)
      if s < last:
        x = max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = ConvBlock(self.num_classes, (1, 1), batch_norm=False, relu=False, dtype=self.dtype,
                  name="classifier")(x, train)
    return global_avg_pool(x)


register("nin")(NiN)
