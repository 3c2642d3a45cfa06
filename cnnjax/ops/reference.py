"""NumPy reference convolution and pooling, forward and backward, with the course's semantics.

These are the oracles for the JAX ops and what the notebooks teach from, so they are
written as plain loops over output windows; each window step is vectorised over the
batch and the channels. Layout: NHWC activations, HWIO filters, zero padding,
cross-correlation (no flip), pooling without padding.
"""

import numpy as np

from cnnjax.ops.conv import conv_output_size

_POOL_MODES = ("max", "average")


def _check_conv_args(a_prev: np.ndarray, w: np.ndarray, b: np.ndarray) -> None:
  if a_prev.ndim != 4:
    raise ValueError(f"a_prev.shape={a_prev.shape}: expected (m, n_H, n_W, n_C_prev)")
  if w.ndim != 4 or w.shape[2] != a_prev.shape[3]:
    raise ValueError(f"w.shape={w.shape}: expected (f_H, f_W, {a_prev.shape[3]}, n_C) "
                     f"to match a_prev.shape={a_prev.shape}")
  if b.shape not in ((w.shape[3],), (1, 1, 1, w.shape[3])):
    raise ValueError(f"b.shape={b.shape}: expected ({w.shape[3]},) or (1, 1, 1, {w.shape[3]})")


def _check_pool_mode(mode: str) -> None:
  if mode not in _POOL_MODES:
    raise ValueError(f"mode={mode!r}: expected one of {_POOL_MODES}")


def _zero_pad(x: np.ndarray, pad: int) -> np.ndarray:
  """Pads the two spatial dims of an NHWC array with `pad` zeros on each side."""
  return np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def _windows(n_h: int, n_w: int, f_h: int, f_w: int, stride: int):
  """Yields (h, w, rows, cols): each output position and the input slices it reads."""
  for h in range(n_h):
    for w in range(n_w):
      yield h, w, slice(h * stride, h * stride + f_h), slice(w * stride, w * stride + f_w)


def conv_forward_reference(a_prev: np.ndarray, w: np.ndarray, b: np.ndarray, *,
                           stride: int, pad: int) -> np.ndarray:
  """Z = conv(a_prev, w) + b, shape (m, n_H, n_W, n_C).

  Args:
    a_prev: (m, n_H_prev, n_W_prev, n_C_prev) activations.
    w: (f_H, f_W, n_C_prev, n_C) filters.
    b: (1, 1, 1, n_C) or (n_C,) biases.
    stride: step between windows.
    pad: zeros added on each side of both spatial dims.
  """
  _check_conv_args(a_prev, w, b)
  f_h, f_w, _, n_c = w.shape
  n_h = conv_output_size(a_prev.shape[1], f_h, pad, stride)
  n_w = conv_output_size(a_prev.shape[2], f_w, pad, stride)
  a_pad = _zero_pad(a_prev, pad)
  z = np.zeros((a_prev.shape[0], n_h, n_w, n_c), np.result_type(a_prev, w, b))
  for h, col, rows, cols in _windows(n_h, n_w, f_h, f_w, stride):
    # Sum of slice * filter over (f_H, f_W, n_C_prev), for every example and filter.
    z[:, h, col, :] = np.tensordot(a_pad[:, rows, cols, :], w, axes=3) + b.reshape(n_c)
  return z


def conv_backward_reference(dz: np.ndarray, a_prev: np.ndarray, w: np.ndarray, b: np.ndarray,
                            *, stride: int, pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Gradients (dA_prev, dW, db) of a loss given dZ, the gradient of the conv output.

  db has the shape of `b`.
  """
  _check_conv_args(a_prev, w, b)
  f_h, f_w, _, _ = w.shape
  n_h, n_w = dz.shape[1:3]
  a_pad = _zero_pad(a_prev, pad)
  da_pad = np.zeros_like(a_pad, dtype=np.result_type(dz, w))
  dw = np.zeros_like(w, dtype=np.result_type(dz, a_prev))
  for h, col, rows, cols in _windows(n_h, n_w, f_h, f_w, stride):
    g = dz[:, h, col, :]  # (m, n_C)
    # Each window received sum(slice * w[..., c]); route the gradient back to both.
    da_pad[:, rows, cols, :] += np.tensordot(g, w, axes=([1], [3]))
    dw += np.tensordot(a_pad[:, rows, cols, :], g, axes=([0], [0]))
  da_prev = da_pad[:, pad:pad + a_prev.shape[1], pad:pad + a_prev.shape[2], :]
  db = dz.sum(axis=(0, 1, 2)).reshape(b.shape)
  return da_prev, dw, db


def pool_forward_reference(a_prev: np.ndarray, *, f: int, stride: int,
                           mode: str = "max") -> np.ndarray:
  """Max or average pooling of (m, n_H_prev, n_W_prev, n_C) over f x f windows, no padding."""
  _check_pool_mode(mode)
  if a_prev.ndim != 4:
    raise ValueError(f"a_prev.shape={a_prev.shape}: expected (m, n_H, n_W, n_C)")
  n_h = conv_output_size(a_prev.shape[1], f, 0, stride)
  n_w = conv_output_size(a_prev.shape[2], f, 0, stride)
  reduce = np.max if mode == "max" else np.mean
  a = np.zeros((a_prev.shape[0], n_h, n_w, a_prev.shape[3]), a_prev.dtype)
  for h, col, rows, cols in _windows(n_h, n_w, f, f, stride):
    a[:, h, col, :] = reduce(a_prev[:, rows, cols, :], axis=(1, 2))
  return a


def pool_backward_reference(da: np.ndarray, a_prev: np.ndarray, *, f: int, stride: int,
                            mode: str = "max") -> np.ndarray:
  """Gradient with respect to a_prev of pooling, given da, the gradient of its output.

  Max: each window's gradient goes to the position(s) equal to the window's max (the
  course's mask; tied maxima each receive it). Average: it is spread evenly over the
  f x f window.
  """
  _check_pool_mode(mode)
  n_h, n_w = da.shape[1:3]
  da_prev = np.zeros_like(a_prev, dtype=da.dtype)
  for h, col, rows, cols in _windows(n_h, n_w, f, f, stride):
    g = da[:, h, col, :][:, None, None, :]  # broadcast over the window
    if mode == "max":
      window = a_prev[:, rows, cols, :]
      mask = window == window.max(axis=(1, 2), keepdims=True)
      da_prev[:, rows, cols, :] += mask * g
    else:
      da_prev[:, rows, cols, :] += g / (f * f)
  return da_prev
