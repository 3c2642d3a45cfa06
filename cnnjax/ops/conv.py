"""Convolution shape arithmetic and an N-d (1D/2D/3D) channels-last convolution in JAX."""

import jax
import jax.numpy as jnp
from jax import lax

from cnnjax.ops.arguments import Padding, check_fits, is_int, resolve_padding, spatial_tuple

_SPATIAL_DIMS = {1: "W", 2: "HW", 3: "DHW"}


def conv_output_size(n: int, f: int, padding: int | str = 0, stride: int = 1) -> int:
  """Output length of a convolution or pooling: floor((n + 2p - f) / s) + 1.

  Args:
    n: input length.
    f: filter (window) length.
    padding: pad on each side as an int, 'valid' (p = 0) or 'same' (p = (f - 1) / 2,
      odd f only), case-insensitive.
    stride: step between windows.
  """
  for name, value in (("n", n), ("f", f), ("stride", stride)):
    if not is_int(value) or value <= 0:
      raise ValueError(f"{name}={value!r}: expected a positive int")
  if isinstance(padding, str):
    kind = padding.lower()
    if kind == "valid":
      p = 0
    elif kind == "same":
      if f % 2 == 0:
        raise ValueError(f"padding='same' with f={f}: expected an odd filter size "
                         f"(p = (f - 1) / 2 must be an int)")
      p = (f - 1) // 2
    else:
      raise ValueError(f"padding={padding!r}: expected an int, 'valid' or 'same'")
  elif is_int(padding) and padding >= 0:
    p = padding
  else:
    raise ValueError(f"padding={padding!r}: expected a non-negative int, 'valid' or 'same'")
  if f > n + 2 * p:
    raise ValueError(f"f={f}: expected a window no larger than the padded input "
                     f"n + 2p = {n + 2 * p}")
  return int((n + 2 * p - f) // stride + 1)


def conv(x: jax.Array, w: jax.Array, b: jax.Array | None = None, *,
         stride: int | tuple[int, ...] = 1, padding: Padding = "valid") -> jax.Array:
  """Cross-correlation (no flip) of channels-last `x` with `w`, 1D/2D/3D by the rank of `w`.

  Args:
    x: input of shape (N, *spatial, C_in), rank 3, 4 or 5.
    w: filters of shape (*spatial, C_in, C_out), same number of spatial dims as `x`.
    b: optional bias with C_out elements, e.g. (C_out,) or (1, 1, 1, C_out).
    stride: int or one int per spatial dim.
    padding: 'valid', 'same' (lax/Keras rule: output ceil(n / s), which for odd f and
      stride 1 is p = (f - 1) / 2 on each side), an int, or (lo, hi) pairs per dim.
      Zero padding.

  Returns:
    (N, *out_spatial, C_out).
  """
  dtype = jnp.result_type(x, w)
  x, w = jnp.asarray(x, dtype), jnp.asarray(w, dtype)
  nd = w.ndim - 2
  if nd not in _SPATIAL_DIMS:
    raise ValueError(f"w.shape={tuple(w.shape)}: expected (*spatial, C_in, C_out) with 1, 2 "
                     f"or 3 spatial dims (rank 3, 4 or 5)")
  if x.ndim != nd + 2:
    raise ValueError(f"x.shape={tuple(x.shape)}: expected rank {nd + 2} (N, *spatial, C_in) "
                     f"to match w.shape={tuple(w.shape)}")
  if x.shape[-1] != w.shape[-2]:
    raise ValueError(f"x.shape={tuple(x.shape)}: expected {w.shape[-2]} input channels "
                     f"(w.shape[-2] of w.shape={tuple(w.shape)}), got {x.shape[-1]}")
  if b is not None and jnp.size(b) != w.shape[-1]:
    raise ValueError(f"b.shape={tuple(jnp.shape(b))}: expected {w.shape[-1]} elements "
                     f"(C_out of w.shape={tuple(w.shape)})")
  window = tuple(w.shape[:-2])
  strides = spatial_tuple(stride, nd, "stride")
  pads = resolve_padding(padding, x.shape[1:-1], window, strides)
  check_fits(x.shape[1:-1], window, pads, name="w.shape")
  sp = _SPATIAL_DIMS[nd]
  dims = lax.conv_dimension_numbers(x.shape, w.shape, (f"N{sp}C", f"{sp}IO", f"N{sp}C"))
  out = lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=dims)
  if b is not None:
    out = out + jnp.reshape(b, (w.shape[-1],)).astype(out.dtype)
  return out
