"""Max and average pooling for channels-last inputs with 1, 2 or 3 spatial dims.

Non-overlapping, unpadded pooling (strides == window, the LeNet/VGG case) is lowered
as reshape + max/mean, which XLA:CPU runs much faster than `lax.reduce_window`
(LeNet-5 train step at batch 256: 50 -> 36 ms); every other case uses
`lax.reduce_window`.

Gradient of max pooling with ties inside a window: on the reshape path the gradient
is split evenly among the tied maxima (the `jnp.max` rule); on the `reduce_window`
path it all goes to the first maximum in row-major window order (XLA's
select-and-scatter, like PyTorch). Without ties both equal the usual max mask.
"""

from collections.abc import Sequence
import math

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from cnnjax.ops._args import Padding, check_fits, resolve_padding, spatial_tuple


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


def _out_size(n: int, f: int, s: int, lo: int, hi: int) -> int:
  return (n + lo + hi - f) // s + 1


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


def _is_blocked(window, strides, pads) -> bool:
  return tuple(window) == tuple(strides) and all(p == (0, 0) for p in pads)


def _blocks(x: jax.Array, window: Sequence[int]) -> tuple[jax.Array, tuple[int, ...]]:
  """Crops x to whole windows and reshapes to (N, o1, k1, o2, k2, ..., C)."""
  outs = [n // f for n, f in zip(x.shape[1:-1], window)]
  x = x[(slice(None),) + tuple(slice(0, o * f) for o, f in zip(outs, window))]
  shape = [x.shape[0]]
  for o, f in zip(outs, window):
    shape += [o, f]
  x = x.reshape(*shape, x.shape[-1])
  return x, tuple(range(2, 2 * len(window) + 1, 2))


def _lowest(dtype) -> np.ndarray:
  # A NumPy constant, not a jnp one: under jit a jnp scalar is a tracer, and
  # reduce_window is differentiable only with a concrete identity init value.
  if jnp.issubdtype(dtype, jnp.floating):
    return np.array(-np.inf, dtype)
  return np.array(jnp.iinfo(dtype).min, dtype)


def max_pool(x: jax.Array, window_shape: int | Sequence[int],
             strides: int | Sequence[int] | None = None, padding: Padding = "VALID",
             ceil_mode: bool = False) -> jax.Array:
  """Max pooling over the spatial dims of `x` of shape (N, *spatial, C).

  Tied maxima in a window share the gradient evenly when strides == window and
  there is no padding, otherwise the first one (row-major) gets it all; see the
  module docstring.

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
  if _is_blocked(window, strides, pads):
    blocks, axes = _blocks(x, window)
    return jnp.max(blocks, axis=axes)
  return lax.reduce_window(x, _lowest(x.dtype), lax.max, (1, *window, 1), (1, *strides, 1),
                           [(0, 0), *pads, (0, 0)])


def _real_counts(spatial, window, strides, pads) -> np.ndarray:
  """Number of real (unpadded) input elements in each window, shape (1, *out, 1)."""
  counts = np.ones((1,), np.float32)
  for n, f, s, (lo, hi) in zip(spatial, window, strides, pads):
    starts = np.arange(_out_size(n, f, s, lo, hi)) * s - lo
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
  if _is_blocked(window, strides, pads):
    blocks, axes = _blocks(x, window)
    return jnp.mean(blocks, axis=axes)
  sums = lax.reduce_window(x, np.array(0, x.dtype), lax.add, (1, *window, 1),
                           (1, *strides, 1), [(0, 0), *pads, (0, 0)])
  if count_include_pad:
    return sums / jnp.asarray(math.prod(window), sums.dtype)
  return sums / jnp.asarray(_real_counts(x.shape[1:-1], window, strides, pads), sums.dtype)
