"""AlexNet in torchvision's layout (Krizhevsky et al. 2012, one-GPU variant)."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnjax.models.layers import Conv, adaptive_avg_pool, check_input, expected_channels, max_pool, scaled
from cnnjax.models.registry import register

# (features, kernel, stride, padding, max-pool after) for conv1..conv5.
_CONVS = ((64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False),
          (256, 3, 1, 1, False), (256, 3, 1, 1, True))


class AlexNet(nn.Module):
  """conv1..conv5 with 3x3/2 max pooling, adaptive average pooling to 6x6, fc6..fc8.

  The adaptive pool (as in torchvision) makes fc6 take 6x6x256 inputs whatever
  the image size; the flatten is in NHWC order. `width` multiplies every
  conv's and fc6/fc7's channels.
  """
  num_classes: int = 1000
  dropout_rate: float = 0.5
  width: float = 1.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    # 63 is the smallest size whose last max pool still has a full 3x3 window.
    check_input(x, rank=4, channels=expected_channels(self, "conv1"), min_size=63)
    for i, (features, k, s, p, pool) in enumerate(_CONVS, start=1):
      x = Conv(scaled(features, self.width), (k, k), strides=(s, s), padding=((p, p), (p, p)), dtype=self.dtype,
               name=f"conv{i}")(x)
      x = nn.relu(x)
      if pool:
        x = max_pool(x, (3, 3), strides=(2, 2))
    x = adaptive_avg_pool(x, (6, 6)).reshape(x.shape[0], -1)
    for name in ("fc6", "fc7"):
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
      x = nn.relu(nn.Dense(scaled(4096, self.width), dtype=self.dtype, name=name)(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="fc8")(x)


register("alexnet")(AlexNet)
