"""Gradient of max pooling over non-overlapping windows, NHWC float32, on this folder's CPU kernel.

`max_pool_grad(x, dy, window)` is the gradient with respect to `x` of the max
pooling of `x` over `window`-sized windows with strides equal to the window
and no padding, given `dy`, the gradient of its output: each window's gradient
goes to its first maximum in row-major order (to its last NaN where it has
one), as `cnnjax.ops.max_pool`'s own. XLA:CPU computes that gradient as one
scatter per window element. Under a batch-sharded `jit`, each device runs the
kernel on its own shard.
"""

import functools

import jax
from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
import numpy as np

from cnnjax.ops.kernels import build, sharding


def supports(x: jax.Array) -> bool:
  """Whether `max_pool_grad` takes `x`: float32 NHWC."""
  return x.ndim == 4 and x.dtype == np.float32


def max_pool_grad(x: jax.Array, dy: jax.Array, window: tuple[int, int]) -> jax.Array:
  """The gradient of max pooling `x` over non-overlapping `window`s, given `dy` (see the module docstring)."""
  return _grad(x, dy, tuple(window))


def _local_grad(x, dy, window):
  return build.call("cnnjax_max_pool_grad", jax.ShapeDtypeStruct(x.shape, x.dtype), x, dy,
                    fallback=functools.partial(_xla_grad, window=window), window_h=np.int64(window[0]),
                    window_w=np.int64(window[1]))


def _xla_grad(x, dy, window):
  """XLA's select-and-scatter: the same gradient but where a window holds a NaN."""
  dims = (1, *window, 1)
  pool = lambda x: lax.reduce_window(x, -np.inf, lax.max, dims, dims, "VALID")
  return jax.vjp(pool, x)[1](dy)[0]


def _partition(window, mesh, arg_shapes, result_shape):
  del result_shape
  split = sharding.batch_split(mesh, arg_shapes)
  return mesh, lambda x, dy: _local_grad(x, dy, window), split, (split, split)


def _infer(window, mesh, arg_shapes, result_shape):
  del window, result_shape
  return sharding.batch_split(mesh, arg_shapes)


_grad = custom_partitioning(_local_grad, static_argnums=(2,))
_grad.def_partition(_partition, infer_sharding_from_operands=_infer, sharding_rule="n h w c, n i j c -> n h w c",
                    need_replication_factors=tuple("hwcij"))
