"""Max and average pooling for channels-last inputs with 1, 2 or 3 spatial dims.

Lowering, chosen for XLA:CPU speed (measured on 2 cores; on an H100 all three run
alike), see BUILD.md:
- windows of at most 9 elements (2x2, 3x3, 2x2x2, ...): an elementwise fold over the
  window's strided slices of the padded input. Max pool forward + backward on
  (256, 28, 28, 6), 2x2/2: 10.6 ms with `lax.reduce_window`, 7.2 ms as reshape + max,
  1.4-2.7 ms as slices; 3x3/2 'SAME' on (32, 56, 56, 32): 64 ms -> 10 ms.
- larger windows with strides == window and no padding: reshape + max/mean.
- anything else: `lax.reduce_window`.
On XLA:CPU, the gradient of a float32 2D max pool over non-overlapping windows
of at most 9 elements, unpadded, is the C++ kernel `kernels.max_pool_grad` (one
pass; XLA's is a scatter per window element): LeNet-5's train step at batch 256,
two cores, 13.7 -> 12.2 ms.

Gradient of max pooling when a window holds tied maxima: the first maximum in
row-major window order gets all of it (as PyTorch and XLA's select-and-scatter),
except on the reshape path (non-overlapping windows of more than 9 elements), where
it is split evenly among the tied maxima. Without ties every path gives the max mask.
"""

from collections.abc import Callable, Iterator, Sequence
import functools
import itertools
import math

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from cnnjax.ops import kernels
from cnnjax.ops.arguments import Padding, check_fits, resolve_padding, spatial_tuple

# Above this many elements per window the slice fold's backward pass (one scatter per
# slice) loses to reshape / reduce_window (7x7 global pool: 14 ms vs 0.9 ms).
_MAX_SLICES = 9


def _setup(x: jax.Array, window_shape, strides, padding):
  """Validates arguments; returns (window, strides, pads) as per-spatial-dim tuples."""
  if x.ndim not in (3, 4, 5):
    raise ValueError(f"x.shape={tuple(x.shape)}: expected (N, *spatial, C) with 1, 2 or 3 "
                     f"spatial dims (rank 3, 4 or 5)")
  nd = x.ndim - 2
  window = spatial_tuple(window_shape, nd, "window_shape")
  strides = window if strides is None else spatial_tuple(strides, nd, "strides")
  spatial = x.shape[1:-1]
  pads = resolve_padding(padding, spatial, window, strides)
  check_fits(spatial, window, pads)
  return window, strides, pads


def _out_sizes(spatial, window, strides, pads) -> list[int]:
  return [(n + lo + hi - f) // s + 1 for n, f, s, (lo, hi) in zip(spatial, window, strides, pads)]


def _ceil_mode_pads(spatial, window, strides, pads) -> list[tuple[int, int]]:
  """Extends the high pads so the last partial window is kept (PyTorch's ceil_mode)."""
  out = []
  for n, f, s, (lo, hi) in zip(spatial, window, strides, pads):
    size = -(-(n + lo + hi - f) // s) + 1
    # A window must start inside the input or the left padding, never in the right one.
    if (size - 1) * s >= n + lo:
      size -= 1
    out.append((lo, hi + max(0, (size - 1) * s + f - (n + lo + hi))))
  return out


def _window_slices(x, window, strides, pads, fill) -> Iterator[jax.Array]:
  """For each offset in the window, the strided slice of the padded x it reads."""
  outs = _out_sizes(x.shape[1:-1], window, strides, pads)
  xp = jnp.pad(x, [(0, 0), *pads, (0, 0)], constant_values=fill)
  for offsets in itertools.product(*(range(f) for f in window)):
    yield xp[(slice(None),) + tuple(slice(o, o + (m - 1) * s + 1, s)
                                    for o, m, s in zip(offsets, outs, strides))]


def _blocks(x: jax.Array, window: Sequence[int]) -> tuple[jax.Array, tuple[int, ...]]:
  """Crops x to whole windows and reshapes to (N, o1, k1, o2, k2, ..., C)."""
  outs = [n // f for n, f in zip(x.shape[1:-1], window)]
  x = x[(slice(None),) + tuple(slice(0, o * f) for o, f in zip(outs, window))]
  shape = [x.shape[0]]
  for o, f in zip(outs, window):
    shape += [o, f]
  return x.reshape(*shape, x.shape[-1]), tuple(range(2, 2 * len(window) + 1, 2))


def _reduce(x, window, strides, pads, *, fold: Callable, block_reduce: Callable,
            window_op: Callable, identity: np.ndarray) -> jax.Array:
  """Applies a window reduction with the fastest lowering (see the module docstring)."""
  if math.prod(window) <= _MAX_SLICES:
    return functools.reduce(fold, _window_slices(x, window, strides, pads, identity))
  if tuple(window) == tuple(strides) and all(p == (0, 0) for p in pads):
    blocks, axes = _blocks(x, window)
    return block_reduce(blocks, axis=axes)
  # The identity is a NumPy constant: under jit a jnp scalar is a tracer, and
  # reduce_window is differentiable only with a concrete init value.
  return lax.reduce_window(x, identity, window_op, (1, *window, 1), (1, *strides, 1),
                           [(0, 0), *pads, (0, 0)])


def _first_max(m: jax.Array, p: jax.Array) -> jax.Array:
  """max(m, p) whose gradient goes to m on ties (the earlier slice); NaN propagates."""
  take_p = p > m
  if jnp.issubdtype(p.dtype, jnp.floating):
    take_p = take_p | jnp.isnan(p)
  return jnp.where(take_p, p, m)


def _lowest(dtype) -> np.ndarray:
  if jnp.issubdtype(dtype, jnp.floating):
    return np.array(-np.inf, dtype)
  return np.array(jnp.iinfo(dtype).min, dtype)


def max_pool(x: jax.Array, window_shape: int | Sequence[int],
             strides: int | Sequence[int] | None = None, padding: Padding = "VALID",
             ceil_mode: bool = False) -> jax.Array:
  """Max pooling over the spatial dims of `x` of shape (N, *spatial, C).

  With tied maxima in a window the first one (row-major) gets the gradient, except
  for non-overlapping windows of more than 9 elements; see the module docstring.

  Args:
    x: channels-last input with 1, 2 or 3 spatial dims.
    window_shape: int or one int per spatial dim.
    strides: int or one int per spatial dim; None means equal to the window.
    padding: 'VALID', 'SAME' (case-insensitive), an int, or (lo, hi) pairs per
      spatial dim. Padded positions never win the max.
    ceil_mode: keep the last partial window (output size rounded up), as PyTorch's
      `ceil_mode`; a window must still start inside the input or the left padding.
  """
  x = jnp.asarray(x)
  window, strides, pads = _setup(x, window_shape, strides, padding)
  if ceil_mode:
    pads = _ceil_mode_pads(x.shape[1:-1], window, strides, pads)
  if (x.ndim == 4 and window == strides and not any(map(any, pads)) and math.prod(window) <= _MAX_SLICES
      and kernels.supports_max_pool_grad(x)):
    return lax.platform_dependent(x, cpu=lambda x: _max_pool_kernel_grad(x, window),
                                  default=lambda x: _max_pool(x, window, strides, pads))
  return _max_pool(x, window, strides, pads)


def _max_pool(x, window, strides, pads):
  return _reduce(x, window, strides, pads, fold=_first_max, block_reduce=jnp.max, window_op=lax.max,
                 identity=_lowest(x.dtype))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _max_pool_kernel_grad(x, window):
  """Max pooling over non-overlapping windows whose gradient is the CPU kernel `kernels.max_pool_grad`."""
  return _max_pool(x, window, window, ((0, 0),) * len(window))


def _max_pool_kernel_grad_fwd(x, window):
  return _max_pool_kernel_grad(x, window), x


def _max_pool_kernel_grad_bwd(window, x, dy):
  return (kernels.max_pool_grad(x, dy, window),)


_max_pool_kernel_grad.defvjp(_max_pool_kernel_grad_fwd, _max_pool_kernel_grad_bwd)


def _real_counts(spatial, window, strides, pads) -> np.ndarray:
  """Number of real (unpadded) input elements in each window, shape (1, *out, 1)."""
  counts = np.ones((1,), np.float32)
  for n, f, s, (lo, _), size in zip(spatial, window, strides, pads,
                                    _out_sizes(spatial, window, strides, pads)):
    starts = np.arange(size) * s - lo
    per_dim = np.minimum(starts + f, n) - np.maximum(starts, 0)
    counts = np.multiply.outer(counts, per_dim.astype(np.float32))
  return counts.reshape(1, *counts.shape[1:], 1)


def avg_pool(x: jax.Array, window_shape: int | Sequence[int],
             strides: int | Sequence[int] | None = None, padding: Padding = "VALID",
             count_include_pad: bool = True) -> jax.Array:
  """Average pooling over the spatial dims of `x` of shape (N, *spatial, C).

  Args:
    x: channels-last input with 1, 2 or 3 spatial dims.
    window_shape: int or one int per spatial dim.
    strides: int or one int per spatial dim; None means equal to the window.
    padding: 'VALID', 'SAME' (case-insensitive), an int, or (lo, hi) pairs per
      spatial dim; padded positions hold zeros.
    count_include_pad: divide by the full window size (True) or by the number of
      real input elements in each window (False).
  """
  x = jnp.asarray(x)
  window, strides, pads = _setup(x, window_shape, strides, padding)
  sums = _reduce(x, window, strides, pads, fold=jnp.add, block_reduce=jnp.sum,
                 window_op=lax.add, identity=np.array(0, x.dtype))
  if count_include_pad:
    return sums / jnp.asarray(math.prod(window), sums.dtype)
  return sums / jnp.asarray(_real_counts(x.shape[1:-1], window, strides, pads), sums.dtype)
