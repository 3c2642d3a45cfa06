"""NumPy reference conv/pool forward and backward against torch autograd and finite differences."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnjax.ops import (conv_backward_reference, conv_forward_reference, pool_backward_reference,
                        pool_forward_reference)

# (a_prev shape, filter (f_H, f_W), n_C, stride, pad): odd and even sizes, strides 1-3, pads 0-2.
CONV_CASES = [((2, 5, 5, 3), (3, 3), 4, 1, 0), ((1, 6, 7, 2), (2, 2), 3, 2, 1),
              ((2, 7, 6, 1), (3, 2), 2, 3, 2), ((1, 4, 4, 2), (1, 1), 5, 1, 2),
              ((3, 8, 5, 2), (4, 3), 2, 2, 0)]


def _nchw(x):
  return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1))).requires_grad_()


def _nhwc(t):
  return np.moveaxis(t.detach().numpy(), 1, -1)


@pytest.mark.parametrize("shape,fsize,n_c,stride,pad", CONV_CASES)
def test_conv_forward_and_backward_match_torch(shape, fsize, n_c, stride, pad):
  rng = np.random.default_rng(sum(shape) + stride)
  a = rng.standard_normal(shape)
  w = rng.standard_normal((*fsize, shape[-1], n_c))
  b = rng.standard_normal((1, 1, 1, n_c))
  at, wt = _nchw(a), torch.from_numpy(w.transpose(3, 2, 0, 1).copy()).requires_grad_()
  bt = torch.from_numpy(b.ravel()).requires_grad_()
  zt = F.conv2d(at, wt, bt, stride=stride, padding=pad)
  z = conv_forward_reference(a, w, b, stride=stride, pad=pad)
  np.testing.assert_allclose(z, _nhwc(zt), rtol=1e-10, atol=1e-12)
  dz = rng.standard_normal(z.shape)
  zt.backward(_nchw(dz))
  da, dw, db = conv_backward_reference(dz, a, w, b, stride=stride, pad=pad)
  np.testing.assert_allclose(da, _nhwc(at.grad), rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(dw, wt.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-10, atol=1e-12)
  assert db.shape == b.shape
  np.testing.assert_allclose(db.ravel(), bt.grad.numpy(), rtol=1e-10)


def test_conv_backward_matches_finite_differences():
  rng = np.random.default_rng(0)
  a, w, b = rng.standard_normal((1, 5, 4, 2)), rng.standard_normal((3, 2, 2, 2)), rng.standard_normal(2)
  dz = rng.standard_normal(conv_forward_reference(a, w, b, stride=2, pad=1).shape)

  def loss(a_, w_, b_):
    return np.sum(conv_forward_reference(a_, w_, b_, stride=2, pad=1) * dz)

  grads = conv_backward_reference(dz, a, w, b, stride=2, pad=1)
  eps = 1e-6
  for i, x in enumerate((a, w, b)):
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
      args_hi = [y.copy() for y in (a, w, b)]
      args_lo = [y.copy() for y in (a, w, b)]
      args_hi[i][idx] += eps
      args_lo[i][idx] -= eps
      numeric[idx] = (loss(*args_hi) - loss(*args_lo)) / (2 * eps)
    np.testing.assert_allclose(grads[i], numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape,f,stride", [((2, 4, 4, 3), 2, 2), ((1, 7, 6, 2), 3, 2),
                                            ((2, 5, 8, 1), 2, 1), ((1, 9, 9, 2), 3, 3)])
@pytest.mark.parametrize("mode", ["max", "average"])
def test_pool_forward_and_backward_match_torch(shape, f, stride, mode):
  rng = np.random.default_rng(f * 10 + stride)
  a = rng.standard_normal(shape)  # random floats: no ties in a window
  at = _nchw(a)
  pool = F.max_pool2d if mode == "max" else F.avg_pool2d
  out_t = pool(at, f, stride)
  out = pool_forward_reference(a, f=f, stride=stride, mode=mode)
  np.testing.assert_allclose(out, _nhwc(out_t), rtol=1e-12)
  da = rng.standard_normal(out.shape)
  out_t.backward(_nchw(da))
  np.testing.assert_allclose(pool_backward_reference(da, a, f=f, stride=stride, mode=mode),
                             _nhwc(at.grad), rtol=1e-12, atol=1e-14)


def test_course_max_pool_example():
  # The course's 4x4 example: 2x2 max pool, stride 2 -> [[9, 2], [6, 3]].
  a = np.array([[1, 3, 2, 1], [2, 9, 1, 1], [1, 3, 2, 3], [5, 6, 1, 2]], np.float64)
  out = pool_forward_reference(a[None, :, :, None], f=2, stride=2)
  np.testing.assert_array_equal(out[0, :, :, 0], [[9, 2], [6, 3]])
  d = pool_backward_reference(np.ones((1, 2, 2, 1)), a[None, :, :, None], f=2, stride=2)
  assert d.sum() == 4 and d[0, 1, 1, 0] == 1 and d[0, 3, 1, 0] == 1


@pytest.mark.parametrize("call,match", [
    (lambda: conv_forward_reference(np.zeros((4, 4, 3)), np.zeros((2, 2, 3, 1)), np.zeros(1),
                                    stride=1, pad=0), "a_prev.shape"),
    (lambda: conv_forward_reference(np.zeros((1, 4, 4, 3)), np.zeros((2, 2, 2, 1)), np.zeros(1),
                                    stride=1, pad=0), "w.shape"),
    (lambda: conv_forward_reference(np.zeros((1, 4, 4, 3)), np.zeros((2, 2, 3, 2)), np.zeros(3),
                                    stride=1, pad=0), "b.shape"),
    (lambda: conv_forward_reference(np.zeros((1, 4, 4, 3)), np.zeros((7, 7, 3, 2)), np.zeros(2),
                                    stride=1, pad=1), "f=7"),
    (lambda: pool_forward_reference(np.zeros((1, 4, 4, 3)), f=2, stride=2, mode="min"), "mode"),
    (lambda: pool_forward_reference(np.zeros((1, 4, 4, 3)), f=2, stride=0), "stride"),
])
def test_bad_arguments_raise(call, match):
  with pytest.raises(ValueError, match=match):
    call()
