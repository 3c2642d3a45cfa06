"""ops.batch_norm: flax's BatchNorm values, NumPy's statistics, autodiff's gradients (through the statistics too),
on the channel-sums kernel where it applies and per device under batch sharding."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.ops.batch_norm import batch_norm

_EPS = 1e-5


def _autodiff_batch_norm(x, scale, bias):
  """The definition, left to autodiff: flax's fast variance E[x^2] - E[x]^2, floored at 0."""
  axes = tuple(range(x.ndim - 1))
  mean = jnp.mean(x, axes)
  var = jnp.maximum(jnp.mean(x * x, axes) - jnp.square(mean), 0.0)
  return (x - mean) * (scale * jax.lax.rsqrt(var + _EPS)) + bias, mean, var


def _loss_and_grads(f, x, scale, bias):
  """A loss that reads all three outputs, so that every cotangent path is exercised."""
  rng = np.random.default_rng(1)
  wy, wm, wv = (jnp.asarray(rng.standard_normal(s), jnp.float32) for s in (x.shape, scale.shape, scale.shape))
  loss = lambda *args: (lambda y, m, v: jnp.sum(jnp.sin(y) * wy) + jnp.sum(m * wm) + jnp.sum(v * wv))(*f(*args))
  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(x, scale, bias)


def _inputs(shape, constant_channel=False):
  rng = np.random.default_rng(shape[-1])
  x = rng.standard_normal(shape) * 2 + 1
  if constant_channel:
    x[..., 0] = 0.5  # no variance: exact sums make E[x^2] - E[x]^2 exactly 0 here and in autodiff
  scale, bias = rng.random(shape[-1]) + 0.5, rng.standard_normal(shape[-1])
  return tuple(jnp.asarray(a, jnp.float32) for a in (x, scale, bias))


@pytest.mark.parametrize("shape", [(4, 5, 6, 16), (4, 5, 6, 3), (40, 32), (2, 3, 4, 5, 16)])
def test_values_match_flax_and_statistics_match_numpy(shape):
  x, scale, bias = _inputs(shape)
  y, mean, var = jax.jit(batch_norm, static_argnums=3)(x, scale, bias, _EPS)
  flax_bn = nn.BatchNorm(use_running_average=False, epsilon=_EPS)
  variables = {"params": {"scale": scale, "bias": bias},
               "batch_stats": {"mean": jnp.zeros(shape[-1]), "var": jnp.ones(shape[-1])}}
  want_y, _ = flax_bn.apply(variables, x, mutable=["batch_stats"])
  np.testing.assert_allclose(np.asarray(y), np.asarray(want_y), rtol=1e-5, atol=1e-5)
  x64 = np.asarray(x, np.float64).reshape(-1, shape[-1])
  np.testing.assert_allclose(np.asarray(mean), x64.mean(0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(var), x64.var(0), rtol=1e-4)


@pytest.mark.parametrize("shape,constant_channel", [((4, 5, 6, 16), False), ((4, 5, 6, 3), False),
                                                    ((2, 3, 4, 5, 16), False), ((4, 5, 6, 16), True)])
def test_gradients_match_autodiff_of_the_definition(shape, constant_channel):
  inputs = _inputs(shape, constant_channel)
  want = _loss_and_grads(_autodiff_batch_norm, *inputs)
  got = _loss_and_grads(lambda x, s, b: batch_norm(x, s, b, _EPS), *inputs)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-4 * np.abs(a).max())


@pytest.mark.parametrize("channels,kernel_calls", [(16, 2), (3, 0)])
def test_the_cpu_program_sums_each_pair_in_one_kernel_call(channels, kernel_calls):
  x, scale, bias = _inputs((4, 5, 6, channels))
  grad = jax.grad(lambda x, s, b: jnp.sum(batch_norm(x, s, b, _EPS)[0] ** 3), argnums=(0, 1, 2))
  hlo = jax.jit(grad).lower(x, scale, bias).as_text()
  assert hlo.count("custom_call @cnnjax_channel_sums(") == kernel_calls  # statistics, and their gradient


def test_batch_sharded_statistics_need_one_all_reduce_per_pair(fresh_python):
  script = """
import re, jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from cnnjax.ops.batch_norm import batch_norm
mesh = jax.make_mesh((2,), ("data",))
x = jax.random.normal(jax.random.key(0), (4, 6, 6, 16)); s = jnp.linspace(0.5, 2, 16); b = jnp.linspace(-1, 1, 16)
grads = jax.grad(lambda x, s, b: jnp.sum(jnp.sin(batch_norm(x, s, b, 1e-5)[0])), argnums=(0, 1, 2))
whole = NamedSharding(mesh, P())
step = jax.jit(grads, in_shardings=(NamedSharding(mesh, P("data")), whole, whole))
hlo = step.lower(x, s, b).compile().as_text()
print(*(len(re.findall(op, hlo)) for op in ("all-gather", "all-reduce")))
print(all(np.allclose(u, v, rtol=1e-5, atol=1e-5) for u, v in zip(step(x, s, b), jax.jit(grads)(x, s, b))))
"""
  gathers, reduces, equal = fresh_python(script, XLA_FLAGS="--xla_force_host_platform_device_count=2")
  assert (gathers, equal) == ("0", "True")
  assert int(reduces) == 2  # the statistics' sums, then their gradient's
