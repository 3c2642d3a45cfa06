"""conv_output_size against the formula; the JAX conv against the NumPy reference and torch."""

import math

from hypothesis import given, settings, strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnjax.ops import conv, conv_backward_reference, conv_forward_reference, conv_output_size


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), f=st.integers(1, 9), p=st.integers(0, 4), s=st.integers(1, 4))
def test_conv_output_size_is_the_formula(n, f, p, s):
  if f > n + 2 * p:
    with pytest.raises(ValueError, match="padded input"):
      conv_output_size(n, f, p, s)
  else:
    assert conv_output_size(n, f, p, s) == math.floor((n + 2 * p - f) / s) + 1


def test_conv_output_size_named_paddings():
  assert conv_output_size(6, 3) == 4  # the course's 6x6 * 3x3 -> 4x4
  assert conv_output_size(6, 3, "valid") == 4
  assert conv_output_size(6, 3, "SAME") == 6
  assert conv_output_size(7, 5, "same", 2) == 4
  assert conv_output_size(7, 3, 0, 2) == 3  # the course's strided example: 7x7, f=3, s=2
  assert conv_output_size(28, 5, "Same") == 28
  assert conv_output_size(np.int64(14), np.int32(5)) == 10


@pytest.mark.parametrize("args,match", [
    ((0, 3), "n=0"), ((5, 0), "f=0"), ((5, 3, 0, 0), "stride=0"), ((5, 3, 0, -1), "stride=-1"),
    ((5, 3, -1), "padding=-1"), ((5, 3, "full"), "padding='full'"), ((5, 4, "same"), "odd"),
    ((5, 3, 1.5), "padding=1.5"), ((5.0, 3), "n=5.0"), ((3, 5), "f=5"),
])
def test_conv_output_size_errors(args, match):
  with pytest.raises(ValueError, match=match):
    conv_output_size(*args)


# (x shape, filter (f_H, f_W), n_C, stride, padding, pad for the reference)
REFERENCE_CASES = [((2, 5, 5, 3), (3, 3), 4, 1, "valid", 0), ((1, 6, 7, 2), (2, 2), 3, 2, 1, 1),
                   ((2, 7, 6, 1), (3, 3), 2, 3, 2, 2), ((1, 6, 5, 2), (5, 3), 3, 1, 2, 2),
                   ((1, 5, 6, 2), (3, 3), 2, 1, "same", 1), ((1, 8, 7, 3), (4, 4), 2, 2, 0, 0)]


@pytest.mark.parametrize("shape,fsize,n_c,stride,padding,pad", REFERENCE_CASES)
def test_conv_matches_reference_values_and_gradients(shape, fsize, n_c, stride, padding, pad):
  rng = np.random.default_rng(sum(shape))
  a = rng.standard_normal(shape).astype(np.float32)
  w = rng.standard_normal((*fsize, shape[-1], n_c)).astype(np.float32)
  b = rng.standard_normal((n_c,)).astype(np.float32)
  f = lambda a_, w_, b_: conv(a_, w_, b_, stride=stride, padding=padding)
  z, vjp = jax.vjp(f, jnp.asarray(a), jnp.asarray(w), jnp.asarray(b))
  a64, w64, b64 = a.astype(np.float64), w.astype(np.float64), b.astype(np.float64)
  np.testing.assert_allclose(z, conv_forward_reference(a64, w64, b64, stride=stride, pad=pad),
                             rtol=1e-5, atol=1e-5)
  dz = rng.standard_normal(z.shape).astype(np.float32)
  expected = conv_backward_reference(dz.astype(np.float64), a64, w64, b64, stride=stride, pad=pad)
  for got, want in zip(vjp(jnp.asarray(dz)), expected):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("nd,shape,fsize,stride,padding", [
    (1, (2, 11, 3), (4,), 2, 1), (1, (1, 9, 2), (3,), 1, "same"),
    (2, (1, 8, 7, 2), (3, 2), (2, 1), [(0, 1), (2, 0)]), (2, (1, 8, 8, 2), (3, 3), 2, "same"),
    (3, (1, 6, 5, 7, 2), (3, 2, 3), (1, 2, 2), 1), (3, (1, 5, 5, 5, 1), (2, 2, 2), 1, "valid"),
])
def test_conv_nd_matches_torch(nd, shape, fsize, stride, padding):
  rng = np.random.default_rng(nd)
  x = rng.standard_normal(shape).astype(np.float32)
  w = rng.standard_normal((*fsize, shape[-1], 3)).astype(np.float32)
  b = rng.standard_normal(3).astype(np.float32)
  strides = (stride,) * nd if isinstance(stride, int) else stride
  if isinstance(padding, str):
    pads = jax.lax.padtype_to_pads(shape[1:-1], fsize, strides, padding.upper())
  elif isinstance(padding, int):
    pads = [(padding, padding)] * nd
  else:
    pads = padding
  # torch pads symmetrically only; pad the input explicitly (last spatial dim first).
  xt = F.pad(torch.from_numpy(np.moveaxis(x, -1, 1).copy()),
             [p for lo_hi in reversed(pads) for p in lo_hi])
  wt = torch.from_numpy(np.moveaxis(w, (-1, -2), (0, 1)).copy())
  ref = getattr(F, f"conv{nd}d")(xt, wt, torch.from_numpy(b), stride=strides)
  out = conv(jnp.asarray(x), jnp.asarray(w), jnp.asarray(b), stride=stride, padding=padding)
  np.testing.assert_allclose(out, np.moveaxis(ref.numpy(), 1, -1), rtol=1e-5, atol=1e-5)


def test_course_1d_and_3d_shape_examples():
  # 1D: 14 samples, 16 filters of width 5 -> 10x16, then 32 of width 5 -> 6x32.
  h1 = jax.eval_shape(conv, jax.ShapeDtypeStruct((1, 14, 1), jnp.float32),
                      jax.ShapeDtypeStruct((5, 1, 16), jnp.float32))
  h2 = jax.eval_shape(conv, h1, jax.ShapeDtypeStruct((5, 16, 32), jnp.float32))
  assert (h1.shape, h2.shape) == ((1, 10, 16), (1, 6, 32))
  # 3D: a 14x14x14 volume, 16 filters 5x5x5 -> 10^3 x 16, then 32 -> 6^3 x 32.
  v1 = jax.eval_shape(conv, jax.ShapeDtypeStruct((1, 14, 14, 14, 1), jnp.float32),
                      jax.ShapeDtypeStruct((5, 5, 5, 1, 16), jnp.float32))
  v2 = jax.eval_shape(conv, v1, jax.ShapeDtypeStruct((5, 5, 5, 16, 32), jnp.float32))
  assert (v1.shape, v2.shape) == ((1, 10, 10, 10, 16), (1, 6, 6, 6, 32))
  assert conv_output_size(14, 5) == 10 and conv_output_size(10, 5) == 6


def test_bias_shapes_and_dtype_promotion():
  rng = np.random.default_rng(1)
  x = rng.standard_normal((1, 4, 4, 2)).astype(np.float32)
  w = rng.standard_normal((3, 3, 2, 3)).astype(np.float32)
  b = rng.standard_normal(3).astype(np.float32)
  np.testing.assert_allclose(conv(x, w, b.reshape(1, 1, 1, 3)), conv(x, w) + b, rtol=1e-6)
  assert conv(x.astype(np.uint8), w).dtype == jnp.float32


@pytest.mark.parametrize("x_shape,w_shape,kwargs,match", [
    ((1, 5, 5, 2), (3, 2), {}, "w.shape"),
    ((1, 5, 5, 5, 5, 2), (3, 3, 3, 3, 2, 1), {}, "w.shape"),
    ((1, 5, 2), (3, 3, 2, 1), {}, "x.shape"),
    ((1, 5, 5, 3), (3, 3, 2, 1), {}, "input channels"),
    ((1, 5, 5, 2), (3, 3, 2, 4), dict(b=np.zeros(3)), "b.shape"),
    ((1, 5, 5, 2), (3, 3, 2, 1), dict(stride=0), "stride"),
    ((1, 5, 5, 2), (3, 3, 2, 1), dict(stride=(1, 1, 1)), "stride"),
    ((1, 5, 5, 2), (3, 3, 2, 1), dict(padding="full"), "padding"),
    ((1, 5, 5, 2), (3, 3, 2, 1), dict(padding=-2), "padding"),
    ((1, 2, 5, 2), (4, 3, 2, 1), {}, "larger than the padded input"),
])
def test_conv_bad_arguments_raise(x_shape, w_shape, kwargs, match):
  with pytest.raises(ValueError, match=match):
    conv(np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32), **kwargs)
