"""The zoo's layers and shared pieces: Conv, BatchNorm, pooling, the fusion barrier, input validation.

These layers are the one door from the models to cnnjax's CPU fast paths
(`cnnjax.ops.xla_cpu`, `cnnjax.ops.kernels`, the one-pass BatchNorm): each takes
stock Flax's arguments, gives its values and variables, and chooses its CPU
path only where the program is lowered for the CPU (`lax.platform_dependent`),
so a GPU or TPU program is the one stock Flax layers give (tests/models/
test_accelerator_programs.py holds every zoo model to that). Under
`stock_flax()` they are stock Flax outright: the reference to compare with.
"""

import contextlib
import contextvars
import dataclasses
import functools
import math
from typing import Any, Iterator, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from cnnjax import ops
from cnnjax.ops import xla_cpu
from cnnjax.ops.batch_norm import batch_norm

_STOCK = contextvars.ContextVar("cnnjax_stock_flax", default=False)
Padding = str | Sequence[tuple[int, int]]
# The fields the one-pass path implements at any value (and the module's own).
_ONE_PASS_FIELDS = ("use_running_average", "momentum", "epsilon", "dtype", "parent", "name")


@contextlib.contextmanager
def stock_flax() -> Iterator[None]:
  """Models traced inside build stock Flax layers: `nn.Conv` on lax's convolution, `nn.BatchNorm`,
  `nn.max_pool`/`nn.avg_pool`, no fusion barrier. Same parameters; read while tracing, so jit afresh inside."""
  token = _STOCK.set(True)
  try:
    yield
  finally:
    _STOCK.reset(token)


def conv_general_dilated(*args, **kwargs) -> jax.Array:
  """`lax.conv_general_dilated`'s arguments and values; on the CPU, `xla_cpu.conv_general_dilated`'s paths."""
  return (lax.conv_general_dilated if _STOCK.get() else xla_cpu.conv_general_dilated)(*args, **kwargs)


# Every trainable 2D convolution of cnnjax's networks: `nn.Conv` with the XLA:CPU fast paths of
# `cnnjax.ops.xla_cpu` (same values and parameters).
Conv = functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated)


class BatchNorm(nn.BatchNorm):
  """flax's `nn.BatchNorm`, same variables (params `scale`, `bias`; batch_stats `mean`, `var`) and values, its
  training mode on `cnnjax.ops.batch_norm` (one pass per pair of batch sums on the CPU) where its fields other
  than `use_running_average`, `momentum`, `epsilon` and `dtype` have flax's defaults. Defaults are PyTorch's (its
  momentum 0.1 is 0.9 here), so converted weights behave the same. Statistics are float32."""
  use_running_average: bool | None = False
  momentum: float = 0.9
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array, use_running_average: bool | None = None, *, mask: jax.Array | None = None
               ) -> jax.Array:
    evaluating = nn.merge_param("use_running_average", self.use_running_average, use_running_average)
    if evaluating or _STOCK.get() or mask is not None or not self._one_pass_fields():
      return super().__call__(x, use_running_average, mask=mask)
    features = (x.shape[-1],)
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, features, jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, features, jnp.float32)
    scale = self.param("scale", nn.initializers.ones, features, jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, features, jnp.float32)
    dtype = self.dtype or jnp.result_type(x.dtype, jnp.float32)
    y, mean, var = batch_norm(x.astype(jnp.float32), scale, bias, self.epsilon)
    if not self.is_initializing():
      running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * mean
      running_var.value = self.momentum * running_var.value + (1 - self.momentum) * var
    return y.astype(dtype)

  def _one_pass_fields(self) -> bool:
    """Whether every other field has the default that the one-pass path implements."""
    return all(getattr(self, field.name) == field.default for field in dataclasses.fields(nn.BatchNorm)
               if field.name not in _ONE_PASS_FIELDS and field.default is not dataclasses.MISSING)


def max_pool(x: jax.Array, window_shape: Sequence[int], strides: Sequence[int], padding: Padding = "VALID"
             ) -> jax.Array:
  """`nn.max_pool`; on the CPU `cnnjax.ops.max_pool` (faster lowerings, the kernel gradient), same values."""
  return _pool(nn.max_pool, ops.max_pool, x, tuple(window_shape), tuple(strides), padding)


def avg_pool(x: jax.Array, window_shape: Sequence[int], strides: Sequence[int], padding: Padding = "VALID"
             ) -> jax.Array:
  """`nn.avg_pool` (padding counted); on the CPU `cnnjax.ops.avg_pool` (faster lowerings), same values."""
  return _pool(nn.avg_pool, ops.avg_pool, x, tuple(window_shape), tuple(strides), padding)


def _pool(stock, cpu, x, window_shape, strides, padding):
  stock = functools.partial(stock, window_shape=window_shape, strides=strides, padding=padding)
  if _STOCK.get():
    return stock(x)
  return lax.platform_dependent(
      x, cpu=functools.partial(cpu, window_shape=window_shape, strides=strides, padding=padding), default=stock)


def fusion_barrier(x: jax.Array) -> jax.Array:
  """`x`, computed once and read from memory by all its consumers on the CPU (`xla_cpu.fusion_barrier`: XLA:CPU
  would recompute it in each); `x` as it is elsewhere."""
  return x if _STOCK.get() else xla_cpu.fusion_barrier(x)


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


def scaled(features: int, width: float) -> int:
  """`features` times a width multiplier, rounded, at least 1 (the slimmed classic nets of the claims runs)."""
  if not width > 0:
    raise ValueError(f"width={width!r}: expected a multiplier > 0 of every layer's channels")
  return max(1, round(features * width))


def check_choice(field: str, value: Any, options: Sequence[Any]) -> None:
  """Raises ValueError unless `value` is one of `options`."""
  if value not in options:
    raise ValueError(f"{field} must be one of {list(options)}, got {value!r}")
