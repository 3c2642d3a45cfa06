"""ops/kernels: the compiled NHWC conv gives lax's values and gradients (any tile remainder, padding, kernel
size, thread split), the channel sums NumPy's, the max-pool gradient torch's; they stay per-device under batch
sharding, and their build is shipped, cached, skippable and optional."""

import fnmatch
import pathlib
import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
import torch

from cnnjax.ops import kernels
from cnnjax.ops.kernels import build, conv

_DN = ("NHWC", "HWIO", "NHWC")


def _value_and_grads(f, x, w):
  weights = jnp.arange(w.shape[3], dtype=jnp.float32)  # distinct output-gradient per channel
  return jax.jit(jax.value_and_grad(lambda x, w: jnp.sum(jnp.sin(f(x, w)) * weights), argnums=(0, 1)))(x, w)


@pytest.mark.parametrize("n,h,w,ci,co,k,pads,stride", [
    (2, 5, 37, 16, 32, 3, ((1, 1), (1, 1)), 1),  # output rows of 12 + 12 + 12 + 1 columns
    (3, 6, 9, 32, 16, 1, ((0, 0), (0, 0)), 1),  # 1x1; 3 images over the threads; rows of 8 + 1
    (2, 9, 8, 16, 16, 5, ((2, 1), (0, 4)), 1),  # uneven padding
    (1, 4, 10, 16, 48, 3, ((0, 0), (0, 0)), 1),  # 'valid'; one band split into output-channel groups of 32 and 16
    (1, 3, 20, 144, 32, 3, ((1, 1), (1, 1)), 1),  # input channels in chunks of 32 + ... + 16; spaced-out pixels
    (1, 3, 8, 16, 2 * conv.MAX_WEIGHT_GRAD_CHANNELS, 3, ((1, 1), (1, 1)), 1),  # XLA's weight gradient
    # a kernel over 1 MB, larger than the images: weight-stationary. Forward: groups of 32, 32 and 16 output
    # channels, 12 chunks of input channels, on two threads each group's 10 rows in 3 parts, one across both
    # images; input gradient: 12 groups, chunks of 32, 32 and 16 channels
    (2, 5, 9, 384, 80, 3, ((1, 1), (0, 2)), 1),
    (2, 7, 17, 16, 32, 3, ((1, 1), (1, 1)), 2),  # strided: odd sizes, XLA's input gradient
    (2, 6, 16, 32, 16, 1, ((0, 0), (0, 0)), 2),  # a strided 1x1 projection
])
def test_values_and_gradients_match_lax(n, h, w, ci, co, k, pads, stride):
  assert kernels.load()
  rng = np.random.default_rng(ci + co + k)
  x = jnp.asarray(rng.standard_normal((n, h, w, ci)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((k, k, ci, co)) / np.sqrt(k * k * ci), jnp.float32)  # outputs ~1
  assert kernels.supports(x, kernel, pads, stride)
  want = _value_and_grads(lambda x, w: lax.conv_general_dilated(x, w, (stride, stride), pads, dimension_numbers=_DN),
                          x, kernel)
  got = _value_and_grads(lambda x, w: kernels.conv_nhwc(x, w, pads, stride), x, kernel)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * np.abs(a).max())  # float32 sums in another order


def test_the_weight_gradient_runs_on_the_kernel_only_where_it_beats_xla():
  def hlo(channels):
    x, w = jnp.zeros((2, 8, 8, channels)), jnp.zeros((3, 3, channels, channels))
    grads = jax.value_and_grad(lambda x, w: jnp.sum(kernels.conv_nhwc(x, w, ((1, 1), (1, 1)))), argnums=(0, 1))
    return jax.jit(grads).lower(x, w).as_text()
  narrow, wide = hlo(conv.MAX_WEIGHT_GRAD_CHANNELS), hlo(2 * conv.MAX_WEIGHT_GRAD_CHANNELS)
  assert "cnnjax_conv_nhwc_weight_grad" in narrow and "stablehlo.convolution" not in narrow
  assert "cnnjax_conv_nhwc_weight_grad" not in wide and wide.count("stablehlo.convolution") == 1
  for text in (narrow, wide):
    assert text.count("custom_call @cnnjax_conv_nhwc(") == 2  # forward and input gradient


@pytest.mark.parametrize("x_shape,w_shape,pads", [
    ((1, 8, 8, 12), (3, 3, 12, 16), ((1, 1), (1, 1))),  # input channels not a multiple of 16
    ((1, 8, 8, 16), (3, 3, 16, 8), ((1, 1), (1, 1))),  # output channels
    ((1, 8, 8, 16), (3, 3, 16, 16), ((3, 1), (1, 1))),  # padding as wide as the kernel
    ((8, 8, 16), (3, 3, 16, 16), ((1, 1), (1, 1))),  # no batch axis
    ((1, 8, 8, 16), (3, 3, 16, 2 * conv.MAX_CHANNELS), ((1, 1), (1, 1))),  # more channels than measured
    ((1, 8, 6, 16), (3, 3, 16, 16), ((1, 1), (1, 1))),  # narrower than MIN_WIDTH: XLA is the faster one
])
def test_unsupported_arguments_are_reported(x_shape, w_shape, pads):
  assert not kernels.supports(jnp.zeros(x_shape), jnp.zeros(w_shape), pads)
  assert not kernels.supports(jnp.zeros((1, 8, 8, 16), jnp.bfloat16), jnp.zeros((3, 3, 16, 16), jnp.bfloat16),
                              ((1, 1), (1, 1)))


def test_the_compiled_library_rejects_channels_it_cannot_block():
  assert kernels.load()
  x, dy = jnp.ones((1, 4, 4, 8)), jnp.ones((1, 4, 4, 16))
  with pytest.raises(jax.errors.JaxRuntimeError, match="multiples of 16"):
    jax.block_until_ready(conv._local_weight_grad(x, dy, ((1, 1), (1, 1)), 1, (3, 3)))


@pytest.mark.parametrize("shape", [(3, 16), (2, 5, 7, 32), (2, 3, 4, 5, 48), (1000, 16)])  # ranks 2-5, blocks + rest
def test_channel_sums_match_numpy_in_double(shape):
  rng = np.random.default_rng(len(shape))
  a, b = rng.standard_normal(shape) + 3, rng.standard_normal(shape)
  axes = tuple(range(len(shape) - 1))
  got = jax.jit(kernels.channel_sums)(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
  want = np.stack([a.sum(axes), (a * b).sum(axes)])
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-4)


def test_channel_sums_take_float32_in_multiples_of_16_channels():
  assert kernels.supports_channel_sums(jnp.zeros((4, 32)))
  assert not kernels.supports_channel_sums(jnp.zeros((4, 24)))
  assert not kernels.supports_channel_sums(jnp.zeros((4, 32), jnp.bfloat16))
  with pytest.raises(jax.errors.JaxRuntimeError, match="multiples of 16"):
    jax.block_until_ready(kernels.channel_sums(jnp.ones((4, 24)), jnp.ones((4, 24))))
  with pytest.raises(jax.errors.JaxRuntimeError, match="one shape"):
    jax.block_until_ready(kernels.channel_sums(jnp.ones((4, 16)), jnp.ones((2, 32))))


def _torch_max_pool_grad(x, dy, window):
  xt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1))).requires_grad_()
  torch.nn.functional.max_pool2d(xt, window).backward(torch.from_numpy(np.ascontiguousarray(np.moveaxis(dy, -1, 1))))
  return np.moveaxis(xt.grad.numpy(), 1, -1)


@pytest.mark.parametrize("shape,window", [
    ((2, 28, 28, 6), (2, 2)),  # LeNet-5's first pool
    ((3, 11, 9, 16), (2, 2)),  # a row and a column past the last window
    ((2, 9, 10, 1), (3, 2)), ((1, 8, 12, 20), (2, 3)), ((2, 5, 7, 3), (1, 2)), ((2, 7, 7, 5), (3, 3))])
def test_max_pool_gradient_matches_torch_with_ties_nan_and_infinity(shape, window):
  rng = np.random.default_rng(sum(shape))
  x = rng.integers(-2, 3, shape).astype(np.float32)  # ties in most windows
  x.flat[rng.choice(x.size, x.size // 20, replace=False)] = np.nan
  x.flat[rng.choice(x.size, x.size // 20, replace=False)] = -np.inf
  dy = rng.standard_normal((shape[0], shape[1] // window[0], shape[2] // window[1], shape[3])).astype(np.float32)
  got = jax.jit(kernels.max_pool_grad, static_argnums=2)(jnp.asarray(x), jnp.asarray(dy), window)
  np.testing.assert_array_equal(np.asarray(got), _torch_max_pool_grad(x, dy, window))


def test_max_pool_gradient_takes_float32_nhwc_and_its_pooled_gradient():
  assert kernels.supports_max_pool_grad(jnp.zeros((2, 4, 4, 3)))
  assert not kernels.supports_max_pool_grad(jnp.zeros((2, 4, 4, 3), jnp.bfloat16))
  assert not kernels.supports_max_pool_grad(jnp.zeros((2, 4, 3)))
  with pytest.raises(jax.errors.JaxRuntimeError, match="not the pooled shape"):
    jax.block_until_ready(kernels.max_pool_grad(jnp.ones((2, 4, 4, 3)), jnp.ones((2, 4, 4, 3)), (2, 2)))


def test_batch_sharded_kernels_run_per_device_and_sum_the_weight_gradient_once(fresh_python):
  script = """
import re, jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from cnnjax.ops import kernels
mesh = jax.make_mesh((2,), ("data",))
x = jax.random.normal(jax.random.key(0), (4, 6, 6, 16)); w = jax.random.normal(jax.random.key(1), (3, 3, 16, 16))
grads = jax.grad(lambda x, w: jnp.sum(jnp.sin(kernels.conv_nhwc(x, w, ((1, 1), (1, 1))))), argnums=(0, 1))
step = jax.jit(grads, in_shardings=(NamedSharding(mesh, P("data")), NamedSharding(mesh, P())))
hlo = step.lower(x, w).compile().as_text()
print(*(len(re.findall(op, hlo)) for op in ("all-gather", "all-reduce", "cnnjax_conv_nhwc_weight_grad")))
print(all(np.allclose(a, b, rtol=1e-5, atol=1e-5) for a, b in zip(step(x, w), jax.jit(grads)(x, w))))
pool_grad = lambda x: kernels.max_pool_grad(x, jnp.cos(x[:, ::2, ::2]), (2, 2))
pool_step = jax.jit(pool_grad, in_shardings=NamedSharding(mesh, P("data")))
hlo = pool_step.lower(x).compile().as_text()
print(*(len(re.findall(op, hlo)) for op in ("all-gather|all-reduce|all-to-all", "cnnjax_max_pool_grad")))
print(np.array_equal(pool_step(x), jax.jit(pool_grad)(x)))
"""
  gathers, reduces, weight_grads, equal, pool_collectives, pool_kernels, pool_equal = fresh_python(
      script, XLA_FLAGS="--xla_force_host_platform_device_count=2")
  assert (gathers, reduces, equal) == ("0", "1", "True")  # one all-reduce: the weight gradient's sum
  assert int(weight_grads) >= 1
  assert (pool_collectives, pool_equal) == ("0", "True") and int(pool_kernels) >= 1  # max pool gradient: per device


def test_the_build_is_cached_by_source_and_host(tmp_path, monkeypatch):
  monkeypatch.setenv("CNNJAX_KERNEL_CACHE", str(tmp_path))
  library = build._build()
  built_at = library.stat().st_mtime_ns
  assert library.parent == tmp_path and build._build() == library and library.stat().st_mtime_ns == built_at
  assert [p.name for p in tmp_path.iterdir()] == [library.name]  # no scratch left behind


def test_the_package_ships_every_file_the_build_reads():
  pyproject = pathlib.Path(__file__).parents[2] / "pyproject.toml"
  patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["cnnjax.ops.kernels"]
  for name in build.SOURCES + build.HEADERS:  # a wheel without one cannot build the kernels
    assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
