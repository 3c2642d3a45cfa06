"""Residual networks (He et al. 2015): torchvision's ImageNet ResNets, CIFAR ResNets, plain nets."""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnjax.models.layers import (BatchNorm, Conv, check_choice, check_input, expected_channels, fusion_barrier,
                                  global_avg_pool, max_pool)
from cnnjax.models.registry import register

SHORTCUTS = ("projection", "pad", "none")


def _relu(x: jnp.ndarray) -> jnp.ndarray:
  """ReLU, its result computed once for all its readers (`fusion_barrier`: the residual sums would
  otherwise be recomputed along a whole stage on the CPU)."""
  return fusion_barrier(nn.relu(x))


class _Block(nn.Module):
  """Shared shortcut logic of the residual blocks.

  `shortcut` says what happens where the block changes shape: 'projection'
  (1x1 conv + BN, option B), 'pad' (strided identity with zero channels
  appended, option A, parameter-free), or 'none' (no shortcut: a plain net).
  """
  features: int
  strides: int = 1
  shortcut: str = "projection"
  dtype: Any = jnp.float32

  def conv(self, features: int, k: int, strides: int = 1, name: str | None = None) -> nn.Conv:
    # Explicit symmetric padding, as in PyTorch ('SAME' pads unevenly at stride 2).
    p = (k - 1) // 2
    return Conv(features, (k, k), strides=(strides, strides), padding=((p, p), (p, p)),
                use_bias=False, dtype=self.dtype, name=name)

  def bn(self, train: bool, name: str) -> nn.BatchNorm:
    return BatchNorm(use_running_average=not train, dtype=self.dtype, name=name)

  def merge(self, y: jnp.ndarray, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    """ReLU(y + shortcut(x))."""
    check_choice("shortcut", self.shortcut, SHORTCUTS)
    if self.shortcut == "none":
      return _relu(y)
    if x.shape != y.shape:
      if self.shortcut == "projection":
        x = self.conv(y.shape[-1], 1, self.strides, name="downsample_conv")(x)
        x = self.bn(train, "downsample_bn")(x)
      else:
        x = x[:, ::self.strides, ::self.strides, :]
        x = jnp.pad(x, ((0, 0),) * 3 + ((0, y.shape[-1] - x.shape[-1]),))
    return _relu(y + x.astype(y.dtype))


class BasicBlock(_Block):
  """Two 3x3 convs; the first one strides."""

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    y = _relu(self.bn(train, "bn1")(self.conv(self.features, 3, self.strides, "conv1")(x)))
    y = self.bn(train, "bn2")(self.conv(self.features, 3, name="conv2")(y))
    return self.merge(y, x, train)


class Bottleneck(_Block):
  """1x1 reduce, 3x3 (strided: ResNet v1.5, as torchvision), 1x1 expand to 4x `features`."""
  expansion: int = 4

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    y = _relu(self.bn(train, "bn1")(self.conv(self.features, 1, name="conv1")(x)))
    y = _relu(self.bn(train, "bn2")(self.conv(self.features, 3, self.strides, "conv2")(y)))
    y = self.bn(train, "bn3")(self.conv(self.features * self.expansion, 1, name="conv3")(y))
    return self.merge(y, x, train)


_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
  """Stem, stages of residual blocks (`layer{s}_{b}`), global average pooling, `fc`.

  ImageNet form (torchvision names): 7x7/2 conv `conv1` + `bn1` + 3x3/2 max
  pool, stage widths 64*2^s. CIFAR form (`cifar_stem=True`, He et al. sec. 4.2):
  one 3x3 conv, widths 16/32/64, no pooling. Every stage after the first halves
  the resolution in its first block. With `features_only`, returns the last
  stage's feature map instead (a backbone, e.g. for YOLO).
  """
  stage_sizes: Sequence[int]
  block: str = "basic"  # 'basic' | 'bottleneck'
  num_classes: int = 1000
  widths: Sequence[int] = (64, 128, 256, 512)
  cifar_stem: bool = False
  shortcut: str = "projection"  # see _Block
  features_only: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    check_choice("block", self.block, tuple(_BLOCKS))
    check_choice("shortcut", self.shortcut, SHORTCUTS)
    check_input(x, rank=4, channels=expected_channels(self, "conv1"))
    k, s, p = (3, 1, 1) if self.cifar_stem else (7, 2, 3)
    x = Conv(self.widths[0], (k, k), strides=(s, s), padding=((p, p), (p, p)), use_bias=False,
             dtype=self.dtype, name="conv1")(x)
    x = _relu(BatchNorm(use_running_average=not train, dtype=self.dtype, name="bn1")(x))
    if not self.cifar_stem:
      x = max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    block = _BLOCKS[self.block]
    for stage, (n, width) in enumerate(zip(self.stage_sizes, self.widths)):
      for b in range(n):
        x = block(width, strides=2 if stage > 0 and b == 0 else 1, shortcut=self.shortcut,
                  dtype=self.dtype, name=f"layer{stage + 1}_{b}")(x, train)
    if self.features_only:
      return x
    x = global_avg_pool(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(x)


def cifar_resnet(depth: int, *, num_classes: int = 10, residual: bool = True, **kwargs) -> ResNet:
  """The 6n+2-layer CIFAR net of He et al. (sec. 4.2) with option A shortcuts, or its plain twin."""
  if depth < 8 or (depth - 2) % 6:
    raise ValueError(f"depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110, ...), got {depth!r}")
  n = (depth - 2) // 6
  return ResNet(stage_sizes=(n, n, n), block="basic", num_classes=num_classes, widths=(16, 32, 64),
                cifar_stem=True, shortcut="pad" if residual else "none", **kwargs)


_IMAGENET = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
             50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
             152: ("bottleneck", (3, 8, 36, 3))}
for _depth, (_block, _sizes) in _IMAGENET.items():
  register(f"resnet{_depth}")(functools.partial(ResNet, stage_sizes=_sizes, block=_block))
for _depth in (20, 32, 44, 56, 110):
  register(f"resnet{_depth}")(functools.partial(cifar_resnet, _depth))
  register(f"plain{_depth}")(functools.partial(cifar_resnet, _depth, residual=False))
