"""A small YOLOv2-style detector: a darknet-like or zoo trunk and a 1x1 conv head to A*(5+C) channels."""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnjax.models.layers import BatchNorm, Conv, check_input, max_pool
from cnnjax.models.registry import create, register


class DarknetBlock(nn.Module):
  """3x3 (or k x k) convolution without bias, BatchNorm, leaky ReLU (slope 0.1)."""
  features: int
  kernel: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    x = Conv(self.features, (self.kernel, self.kernel), padding="SAME", use_bias=False, dtype=self.dtype)(x)
    x = BatchNorm(use_running_average=not train, dtype=self.dtype)(x)
    return nn.leaky_relu(x, 0.1)


class DarknetTiny(nn.Module):
  """Conv blocks of `widths`, a 2x2 max pool after each but the last: output stride 2**(len(widths)-1).

  Each stage after the first adds a 1x1 bottleneck and a second 3x3 block (the
  darknet pattern) when `deep` is set.
  """
  widths: Sequence[int] = (16, 32, 64, 128)
  deep: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    for i, w in enumerate(self.widths):
      x = DarknetBlock(w, dtype=self.dtype)(x, train)
      if self.deep and i > 0:
        x = DarknetBlock(w // 2, kernel=1, dtype=self.dtype)(x, train)
        x = DarknetBlock(w, dtype=self.dtype)(x, train)
      if i < len(self.widths) - 1:
        x = max_pool(x, (2, 2), strides=(2, 2))
    return x


class YOLO(nn.Module):
  """Trunk, one more 3x3 block, then a 1x1 conv predicting (tx, ty, tw, th, to, class logits) per anchor.

  The trunk is `DarknetTiny(widths)`, or with `backbone` a model of the zoo
  that returns feature maps (`create(backbone, features_only=True,
  **backbone_kwargs)`, e.g. `'resnet18'` with `stage_sizes=(2, 2)`: stride 8).

  Returns:
    Raw predictions of shape (N, S, S, num_anchors, 5 + num_classes), S = H / stride.
  """
  num_classes: int
  num_anchors: int = 3
  widths: Sequence[int] = (16, 32, 64, 128)
  deep: bool = True
  backbone: str = ""
  backbone_kwargs: Any = None
  dtype: Any = jnp.float32

  @property
  def stride(self) -> int:
    return 2 ** (len(self.widths) - 1)

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    if self.backbone:
      trunk = create(self.backbone, num_classes=1, features_only=True, dtype=self.dtype,
                     **dict(self.backbone_kwargs or {}))
      x = trunk(x.astype(self.dtype), train)
    else:
      check_input(x, rank=4, min_size=self.stride)
      if x.shape[1] % self.stride or x.shape[2] % self.stride:
        raise ValueError(f"x has spatial size {x.shape[1:3]}; YOLO needs multiples of its stride {self.stride}")
      x = DarknetTiny(self.widths, self.deep, dtype=self.dtype)(x.astype(self.dtype), train)
    x = DarknetBlock(self.widths[-1], dtype=self.dtype)(x, train)
    out = Conv(self.num_anchors * (5 + self.num_classes), (1, 1), dtype=self.dtype, name="head")(x)
    n, s1, s2, _ = out.shape
    return out.reshape(n, s1, s2, self.num_anchors, 5 + self.num_classes).astype(jnp.float32)


@register("yolo_tiny")
def yolo_tiny(*, num_classes: int, **kwargs) -> YOLO:
  """YOLO on the DarknetTiny trunk (stride 8 by default: a 12x12 grid for 96x96 images)."""
  return YOLO(num_classes=num_classes, **kwargs)
