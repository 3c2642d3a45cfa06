"""Pieces shared by the model zoo: input validation, conv+BN+ReLU, adaptive pooling."""

import functools
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from cnnjax.ops import xla_cpu
from cnnjax.ops.batch_norm import batch_norm, normalize

# Every trainable 2D convolution of cnnjax's networks: `nn.Conv` with the XLA:CPU fast paths of
# `cnnjax.ops.xla_cpu` (same values and parameters).
Conv = functools.partial(nn.Conv, conv_general_dilated=xla_cpu.conv_general_dilated)


class BatchNorm(nn.Module):
  """flax's `nn.BatchNorm` over the last axis, same variables (params `scale`, `bias`; batch_stats `mean`,
  `var`) and values, on `cnnjax.ops.batch_norm` (one pass per pair of batch sums on the CPU). Defaults are
  PyTorch's (its momentum 0.1 is 0.9 here), so converted weights behave the same."""
  use_running_average: bool = False
  momentum: float = 0.9
  epsilon: float = 1e-5
  dtype: Any = None  # of the output (None: the input's, at least float32); statistics are float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    features = (x.shape[-1],)
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, features, jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, features, jnp.float32)
    scale = self.param("scale", nn.initializers.ones, features, jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, features, jnp.float32)
    dtype = self.dtype or jnp.result_type(x.dtype, jnp.float32)
    if self.use_running_average:
      inv_std = lax.rsqrt(running_var.value + self.epsilon)
      return normalize(x, running_mean.value, inv_std, scale, bias).astype(dtype)
    y, mean, var = batch_norm(x.astype(jnp.float32), scale, bias, self.epsilon)
    if not self.is_initializing():
      running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * mean
      running_var.value = self.momentum * running_var.value + (1 - self.momentum) * var
    return y.astype(dtype)


def check_input(x: Any, *, rank: int, channels: int | None = None, min_size: int = 1,
                name: str = "x") -> None:
  """Raises ValueError unless `x` is a channels-last batch the model can take.

  Args:
    x: the model input (anything with `.shape`).
    rank: expected number of dimensions, batch and channels included.
    channels: expected size of the last axis, or None to accept any.
    min_size: smallest spatial (or temporal) extent the architecture can reduce
      without producing an empty feature map.
    name: the argument's name in messages.
  """
  shape = tuple(getattr(x, "shape", ()))
  layout = {3: "(N, L, C)", 4: "(N, H, W, C)", 5: "(N, D, H, W, C)"}.get(rank, f"rank {rank}")
  if len(shape) != rank:
    raise ValueError(f"{name} must have rank {rank} {layout}, got shape {shape}")
  if any(d <= 0 for d in shape):
    raise ValueError(f"{name} must have positive sizes in every dimension, got shape {shape}")
  spatial = shape[1:-1]
  if any(d < min_size for d in spatial):
    raise ValueError(
        f"{name} has spatial size {spatial} (shape {shape}); this model needs at least "
        f"{min_size} along each spatial axis")
  if channels is not None and shape[-1] != channels:
    raise ValueError(
        f"{name} has {shape[-1]} channels (shape {shape}); the model's parameters expect "
        f"{channels}")


def expected_channels(module: nn.Module, first_layer: str) -> int | None:
  """Input channels of the kernel at path `first_layer` ('a/b') once initialised, else None.

  Channel counts are checked against the parameters themselves (not a separate
  field), so a model initialised on any channel count rejects any other one.
  """
  node = module.variables.get("params", {})
  for key in first_layer.split("/"):
    if key not in node:
      return None
    node = node[key]
  return int(node["kernel"].shape[-2])


def check_feature_map(module: nn.Module, feature_map: Any, dense_layer: str, input_shape: tuple) -> None:
  """Raises ValueError when flattening `feature_map` does not give the inputs `dense_layer` was initialised on.

  A network that flattens a feature map into a dense layer takes only the input
  size it was initialised with; this names both sizes instead of flax's
  `ScopeParamShapeError`.
  """
  expected = expected_channels(module, dense_layer)  # a dense kernel is (inputs, outputs)
  shape = tuple(feature_map.shape[1:])
  if expected is not None and math.prod(shape) != expected:
    raise ValueError(
        f"input of shape {tuple(input_shape)} gives {dense_layer} a {'x'.join(map(str, shape))} feature map "
        f"({math.prod(shape)} features), but the model was initialised for {expected}: apply it to inputs of the "
        "size it was initialised with, or initialise it on this size")


def adaptive_avg_pool(x: jnp.ndarray, output_size: Sequence[int]) -> jnp.ndarray:
  """PyTorch's AdaptiveAvgPool over the spatial axes of a channels-last batch.

  Output cell i along an axis of size n averages input rows
  [floor(i n / m), ceil((i + 1) n / m)) for output size m.
  """
  for axis, m in enumerate(output_size, start=1):
    n = x.shape[axis]
    if n == m:
      continue
    cells = [jnp.mean(jax.lax.slice_in_dim(x, i * n // m, -(-(i + 1) * n // m), axis=axis),
                      axis=axis, keepdims=True) for i in range(m)]
    x = jnp.concatenate(cells, axis=axis)
  return x


def global_avg_pool(x: jnp.ndarray) -> jnp.ndarray:
  """Mean over every spatial axis: (N, ..., C) -> (N, C)."""
  return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))


class ConvBlock(nn.Module):
  """Convolution, then BatchNorm (optional; the conv drops its bias when on), then ReLU."""
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] | int = 1
  padding: Any = "SAME"
  batch_norm: bool = True
  relu: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    x = Conv(self.features, tuple(self.kernel_size), strides=self.strides, padding=self.padding,
             use_bias=not self.batch_norm, dtype=self.dtype, name="conv")(x)
    if self.batch_norm:
      x = BatchNorm(use_running_average=not train, dtype=self.dtype, name="bn")(x)
    return nn.relu(x) if self.relu else x


def check_choice(field: str, value: Any, options: Sequence[Any]) -> None:
  """Raises ValueError unless `value` is one of `options`."""
  if value not in options:
    raise ValueError(f"{field} must be one of {list(options)}, got {value!r}")
