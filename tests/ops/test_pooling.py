"""max_pool / avg_pool against the NumPy references, a sliding-window oracle and torch."""

import jax
import jax.numpy as jnp
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
import pytest
import torch
import torch.nn.functional as F

from cnnjax.ops import avg_pool, max_pool, pool_backward_reference, pool_forward_reference


def _rand(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _channels_first(x):
  return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1))).requires_grad_()


def _channels_last(t):
  return np.moveaxis(t.detach().numpy(), 1, -1)


def _window_oracle(x, window, strides, pads, mode):
  """N-d pooling by brute force: NaN padding, every window, nan-aware reductions."""
  nd = x.ndim - 2
  xp = np.pad(x.astype(np.float64), [(0, 0), *pads, (0, 0)], constant_values=np.nan)
  views = sliding_window_view(xp, window, axis=tuple(range(1, nd + 1)))
  views = views[(slice(None),) + tuple(slice(None, None, s) for s in strides)]
  axes = tuple(range(-nd, 0))
  if mode == "max":
    return np.nanmax(views, axis=axes)
  if mode == "avg_real":
    return np.nanmean(views, axis=axes)
  return np.nansum(views, axis=axes) / np.prod(window)


# (shape, f, stride). Slice-fold path (windows of <= 9 elements): non-overlapping even
# and odd (cropped) sizes, overlapping, stride 1, stride 3. Windows of 16: reshape path
# (stride == window), reduce_window path (overlapping).
REFERENCE_CASES = [((2, 8, 6, 3), 2, 2), ((1, 7, 9, 2), 2, 2), ((2, 7, 8, 3), 3, 2),
                   ((1, 5, 6, 2), 2, 1), ((2, 9, 7, 2), 2, 3), ((1, 9, 8, 2), 4, 4),
                   ((2, 9, 8, 1), 4, 2)]


@pytest.mark.parametrize("shape,f,stride", REFERENCE_CASES)
@pytest.mark.parametrize("mode", ["max", "average"])
def test_matches_reference_values_and_gradients(shape, f, stride, mode):
  x = _rand(shape, seed=sum(shape) + f)
  pool = max_pool if mode == "max" else avg_pool
  out, vjp = jax.vjp(lambda a: pool(a, (f, f), (stride, stride)), jnp.asarray(x))
  expected = pool_forward_reference(x, f=f, stride=stride, mode=mode)
  np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
  # Random floats: no ties within a window, so every max rule gives the same mask.
  g = _rand(out.shape, seed=1)
  (dx,) = vjp(jnp.asarray(g))
  expected_dx = pool_backward_reference(g, x, f=f, stride=stride, mode=mode)
  np.testing.assert_allclose(dx, expected_dx, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape,window,strides,padding", [
    ((2, 7, 3), 3, 2, "SAME"),
    ((1, 6, 5, 2), (2, 3), (2, 1), "same"),
    ((1, 5, 6, 2), 3, 2, 1),
    ((1, 6, 7, 1), (3, 2), None, [(1, 0), (0, 2)]),
    ((1, 5, 4, 6, 2), 2, (1, 2, 2), "valid"),
    ((1, 4, 6, 4, 1), 2, None, "VALID"),
    ((1, 9, 7, 2), (5, 2), (2, 1), "same"),  # 10-element window: reduce_window path
    ((2, 12, 3), 10, None, 1),
])
def test_padding_modes_match_sliding_window_oracle(shape, window, strides, padding):
  x = _rand(shape, seed=3)
  nd = len(shape) - 2
  win = (window,) * nd if isinstance(window, int) else window
  st = win if strides is None else ((strides,) * nd if isinstance(strides, int) else strides)
  if isinstance(padding, str):
    pads = jax.lax.padtype_to_pads(shape[1:-1], win, st, padding.upper())
  elif isinstance(padding, int):
    pads = [(padding, padding)] * nd
  else:
    pads = padding
  xj = jnp.asarray(x)
  np.testing.assert_allclose(max_pool(xj, window, strides, padding),
                             _window_oracle(x, win, st, pads, "max"), rtol=1e-6)
  np.testing.assert_allclose(avg_pool(xj, window, strides, padding),
                             _window_oracle(x, win, st, pads, "avg_all"), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(avg_pool(xj, window, strides, padding, count_include_pad=False),
                             _window_oracle(x, win, st, pads, "avg_real"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape,k,s,p", [((2, 7, 9, 3), 2, 2, 0), ((1, 8, 7, 2), 3, 2, 1),
                                         ((1, 6, 6, 2), 3, 3, 0), ((1, 10, 9, 1), 3, 2, 0)])
def test_max_pool_ceil_mode_matches_torch(shape, k, s, p):
  x = _rand(shape, seed=k + s)
  xt = _channels_first(x)
  ref = F.max_pool2d(xt, k, s, p, ceil_mode=True)
  g = _rand(_channels_last(ref).shape, seed=7)
  ref.backward(_channels_first(g))
  out, vjp = jax.vjp(lambda a: max_pool(a, k, s, p, ceil_mode=True), jnp.asarray(x))
  np.testing.assert_allclose(out, _channels_last(ref), rtol=1e-6)
  np.testing.assert_allclose(vjp(jnp.asarray(g))[0], _channels_last(xt.grad), rtol=1e-6)


@pytest.mark.parametrize("shape,k,s,p", [((1, 5, 6, 2), 3, 2, 1), ((2, 7, 7, 3), 2, 1, 1),
                                         ((1, 6, 5, 1), 3, 3, 1)])
@pytest.mark.parametrize("count_include_pad", [False, True])
def test_avg_pool_padding_matches_torch(shape, k, s, p, count_include_pad):
  x = _rand(shape, seed=k * s)
  xt = _channels_first(x)
  ref = F.avg_pool2d(xt, k, s, p, count_include_pad=count_include_pad)
  g = _rand(_channels_last(ref).shape, seed=8)
  ref.backward(_channels_first(g))
  out, vjp = jax.vjp(lambda a: avg_pool(a, k, s, p, count_include_pad=count_include_pad),
                     jnp.asarray(x))
  np.testing.assert_allclose(out, _channels_last(ref), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(vjp(jnp.asarray(g))[0], _channels_last(xt.grad), rtol=1e-5,
                             atol=1e-6)


@pytest.mark.parametrize("nd", [1, 3])
def test_1d_and_3d_match_torch(nd):
  shape = (2, 9, 3) if nd == 1 else (1, 5, 6, 7, 2)
  x = _rand(shape, seed=nd)
  max_t = getattr(F, f"max_pool{nd}d")
  avg_t = getattr(F, f"avg_pool{nd}d")
  xt = _channels_first(x)
  xj = jnp.asarray(x)
  np.testing.assert_allclose(max_pool(xj, 3, 2, 1), _channels_last(max_t(xt, 3, 2, 1)))
  np.testing.assert_allclose(max_pool(xj, 2, ceil_mode=True),
                             _channels_last(max_t(xt, 2, ceil_mode=True)))
  np.testing.assert_allclose(avg_pool(xj, 2, 1, 1, count_include_pad=False),
                             _channels_last(avg_t(xt, 2, 1, 1, count_include_pad=False)),
                             rtol=1e-5, atol=1e-6)


def test_lowering_paths():
  x = jnp.zeros((2, 8, 8, 3))
  for pool in (max_pool, avg_pool):
    small = str(jax.make_jaxpr(lambda a: pool(a, 3, 2, "same"))(x))
    blocked = str(jax.make_jaxpr(lambda a: pool(a, 4))(x))
    overlapping = str(jax.make_jaxpr(lambda a: pool(a, 4, 2))(x))
    assert "reduce_window" not in small and "reshape" not in small
    assert "reduce_window" not in blocked and "reshape" in blocked
    assert "reduce_window" in overlapping


def test_max_gradient_runs_on_the_cpu_kernel_for_non_overlapping_float32_windows():
  def hlo(x, *args):
    return jax.jit(jax.grad(lambda a: jnp.sum(jnp.sin(max_pool(a, *args))))).lower(x).as_text()
  x = jnp.zeros((2, 9, 8, 3))
  assert "cnnjax_max_pool_grad" in hlo(x, 2) and "cnnjax_max_pool_grad" in hlo(x, (3, 2))
  for xla_only in [hlo(x, 3, 2, "same"), hlo(x, 2, 2, 1), hlo(x, 4), hlo(x.astype(jnp.bfloat16), 2), hlo(x[0], 2)]:
    assert "cnnjax_max_pool_grad" not in xla_only


def test_max_gradient_with_ties_follows_documented_rule():
  x = jnp.ones((1, 4, 4, 1))
  first = np.zeros((4, 4))
  first[::2, ::2] = 1
  # Slice fold (2x2) and reduce_window (4x4, stride 2, padded): all to the first
  # maximum of each window in row-major order.
  np.testing.assert_array_equal(jax.grad(lambda a: max_pool(a, 2).sum())(x)[0, :, :, 0], first)
  g = jax.grad(lambda a: max_pool(a, 4, 2, [(0, 2), (0, 2)]).sum())(x)[0, :, :, 0]
  np.testing.assert_array_equal(g, first)
  # Reshape path (non-overlapping 4x4): split evenly among the 16 tied maxima.
  np.testing.assert_allclose(jax.grad(lambda a: max_pool(a, 4).sum())(x), 1 / 16)


def test_max_pool_propagates_nan():
  x = np.zeros((1, 4, 4, 1), np.float32)
  x[0, 1, 1, 0] = x[0, 2, 2, 0] = np.nan
  x[0, 2, 3, 0] = 5.0
  out = np.asarray(max_pool(jnp.asarray(x), 2))[0, :, :, 0]
  assert np.isnan(out[0, 0]) and np.isnan(out[1, 1]) and out[0, 1] == 0 and out[1, 0] == 0


def test_integer_input_max_pool_keeps_dtype():
  x = jnp.arange(2 * 5 * 5, dtype=jnp.int32).reshape(2, 5, 5, 1)
  out = max_pool(x, 3, 2, "same")  # pads (1, 1): windows end at rows/cols 1, 3 and 4
  assert out.dtype == jnp.int32
  last = np.array([1, 3, 4])
  np.testing.assert_array_equal(out[0, :, :, 0], np.asarray(x)[0, last[:, None], last, 0])


@pytest.mark.parametrize("kwargs,match", [
    (dict(x=np.zeros((4, 4))), "x.shape"),
    (dict(window_shape=(2, 2, 2)), "window_shape"),
    (dict(window_shape=0), "window_shape"),
    (dict(strides=(1, -1)), "strides"),
    (dict(padding="full"), "padding"),
    (dict(padding=-1), "padding"),
    (dict(padding=[(1, 1)]), "padding"),
    (dict(padding=[(1.5, 0), (0, 0)]), "padding"),
    (dict(window_shape=2.0), "window_shape"),
    (dict(window_shape=7), "larger than the padded input"),
])
@pytest.mark.parametrize("pool", [max_pool, avg_pool])
def test_bad_arguments_raise(pool, kwargs, match):
  args = dict(x=np.zeros((1, 5, 5, 2), np.float32), window_shape=2)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    pool(**args)


@pytest.mark.parametrize("pool", [max_pool, avg_pool])
def test_gradients_under_jit_match_reference(pool):
  # Regression: reduce_window is differentiable under jit only with a concrete init value.
  x = _rand((2, 7, 7, 3), seed=5)
  mode = "max" if pool is max_pool else "average"
  g = _rand((2, 3, 3, 3), seed=6)
  dx = jax.jit(jax.grad(lambda a: jnp.sum(pool(a, 3, 2) * g)))(jnp.asarray(x))
  np.testing.assert_allclose(dx, pool_backward_reference(g, x, f=3, stride=2, mode=mode),
                             rtol=1e-5, atol=1e-6)


def test_numpy_integer_arguments_are_accepted():
  x = _rand((1, 6, 6, 2))
  expected = pool_forward_reference(x, f=3, stride=3)
  np.testing.assert_array_equal(max_pool(x, np.int64(3), (np.int32(3), 3)), expected)
