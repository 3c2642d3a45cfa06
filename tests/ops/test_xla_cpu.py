"""xla_cpu: conv_general_dilated gives lax.conv_general_dilated's values and gradients; `fusion_barrier` is the identity
and computes its argument once; the CPU compile options."""

import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from cnnjax.ops import xla_cpu

_DN = ("NHWC", "HWIO", "NHWC")


def _loss(conv, stride, padding):
  def loss(x, w):
    dn = lax.conv_dimension_numbers(x.shape, w.shape, _DN)
    return jnp.sum(jnp.sin(conv(x, w, (stride, stride), padding, dimension_numbers=dn)))
  return loss


@pytest.mark.parametrize("cin,k,stride,padding", [
    # banded (at most 8 input channels)
    (1, 5, 1, "VALID"), (3, 3, 2, ((1, 1), (1, 1))), (3, 3, 1, "SAME"), (6, 5, 1, "VALID"), (2, 3, 2, ((0, 2), (1, 0))),
    # the library conv
    (12, 3, 1, "SAME"), (12, 3, 2, ((1, 1), (1, 1))), (16, 1, 2, "VALID"), (10, 3, 2, ((0, 1), (2, 0)))])
def test_values_and_gradients_match_lax(cin, k, stride, padding):
  rng = np.random.default_rng(cin + k)
  x = jnp.asarray(rng.standard_normal((2, 9, 26, cin)), jnp.float32)  # 2-3 band tiles
  w = jnp.asarray(rng.standard_normal((k, k, cin, 4)), jnp.float32)
  want = jax.value_and_grad(_loss(lax.conv_general_dilated, stride, padding), argnums=(0, 1))(x, w)
  got = jax.jit(jax.value_and_grad(_loss(xla_cpu.conv_general_dilated, stride, padding), argnums=(0, 1)))(x, w)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-4)  # float32 sums, other order


@pytest.mark.parametrize("x_shape,w_shape,strides,pads", [
    ((3, 14, 13, 6), (5, 3, 6, 16), (2, 1), ((1, 2), (0, 1))),  # one band tile
    ((2, 7, 41, 2), (3, 3, 2, 5), (1, 2), ((1, 1), (2, 0))),  # 4 tiles, the last one partly outside
    ((2, 32, 32, 1), (5, 5, 1, 6), (1, 1), ((0, 0), (0, 0))),  # LeNet-5's conv1: 2 tiles
])
def test_banded_conv_is_the_convolution_in_float64(x_shape, w_shape, strides, pads):
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    x, w = jnp.asarray(rng.normal(size=x_shape)), jnp.asarray(rng.normal(size=w_shape))
    got = xla_cpu.banded_conv(x, w, strides=strides, pads=pads)
    want = lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_DN)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-12)


def test_the_cpu_path_is_a_matrix_product_or_a_kernel_only_where_it_pays():
  def hlo(x_shape, w_shape, strides=(1, 1), dtype=jnp.float32):
    x, w = jnp.zeros(x_shape, dtype), jnp.zeros(w_shape, dtype)
    return jax.jit(lambda x, w: xla_cpu.conv_general_dilated(x, w, strides, "SAME", dimension_numbers=_DN)
                   ).lower(x, w).as_text()
  assert "stablehlo.dot_general" in hlo((2, 32, 32, 1), (5, 5, 1, 6))  # LeNet-5's conv1
  assert "cnnjax_conv_nhwc" in hlo((2, 32, 32, 16), (3, 3, 16, 16))  # too many channels for a band: the kernel
  assert "stablehlo.dot_general" not in hlo((2, 224, 224, 3), (3, 3, 3, 8))  # 75x the multiply-adds
  for lax_only in [hlo((2, 224, 224, 3), (3, 3, 3, 8)), hlo((2, 8, 8, 16), (3, 3, 16, 16), strides=(2, 2)),
                   hlo((2, 8, 8, 16), (3, 3, 16, 16), dtype=jnp.bfloat16), hlo((2, 8, 8, 12), (3, 3, 12, 16))]:
    assert "cnnjax_conv_nhwc" not in lax_only and "stablehlo.convolution" in lax_only


def test_other_layouts_fall_back_to_lax():
  x = jnp.ones((1, 2, 5, 5))  # NCHW
  w = jnp.ones((3, 2, 3, 3))  # OIHW
  got = xla_cpu.conv_general_dilated(x, w, (1, 1), "VALID")
  np.testing.assert_allclose(np.asarray(got), np.asarray(lax.conv_general_dilated(x, w, (1, 1), "VALID")))


def test_compiler_options_apply_to_the_cpu_only_and_compile():
  assert xla_cpu.compiler_options("gpu") is None
  options = xla_cpu.compiler_options("cpu")
  compiled = jax.jit(lambda x: jnp.mean(x @ x.T), compiler_options=options).lower(jnp.ones((64, 64))).compile()
  np.testing.assert_allclose(float(compiled(jnp.ones((64, 64)))), 64.0)


def _barrier_loss(store):
  def loss(x, a):
    y = jax.nn.relu(x * a + 0.5)
    return jnp.sum(jnp.sin(xla_cpu.fusion_barrier(y) if store else y) * jnp.arange(y.shape[-1]))
  return loss


def test_fusion_barrier_is_the_identity_for_values_and_gradients():
  x = jnp.asarray(np.random.default_rng(0).standard_normal((6, 5, 3)), jnp.float32)
  want = jax.jit(jax.value_and_grad(_barrier_loss(False), argnums=(0, 1)))(x, 1.5)
  got = jax.jit(jax.value_and_grad(_barrier_loss(True), argnums=(0, 1)))(x, 1.5)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6, atol=1e-6)  # sums fused in another order
  np.testing.assert_array_equal(np.asarray(jax.jit(xla_cpu.fusion_barrier)(x[0, 0, 0])), np.asarray(x[0, 0, 0]))


def _relus_in_compiled(store):
  def two_readers(x):
    y = jax.nn.relu(x * 2 + 1)
    y = xla_cpu.fusion_barrier(y) if store else y
    return jnp.transpose(y), y[::2] * 3
  text = jax.jit(two_readers).lower(jnp.ones((64, 48))).compile().as_text()
  return len(re.findall(r"\} maximum\(", text))


def test_fusion_barrier_values_are_computed_once_where_xla_would_compute_them_per_reader():
  assert _relus_in_compiled(store=False) == 2  # XLA:CPU's own program: the ReLU fused into both readers
  assert _relus_in_compiled(store=True) == 1


def test_fusion_barrier_needs_no_communication_on_a_batch_sharded_array(fresh_python):
  script = """
import re, jax, jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
from cnnjax.ops import xla_cpu
x = jax.device_put(jnp.arange(8 * 6.).reshape(8, 6), NamedSharding(jax.make_mesh((2,), ("data",)), P("data")))
f = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(xla_cpu.fusion_barrier(jax.nn.relu(x))))))
print(len(re.findall(r"all-reduce|all-gather|all-to-all|collective-permute", f.lower(x).compile().as_text())))
print(bool(jnp.allclose(f(x), jnp.cos(jax.nn.relu(x)) * (x > 0))))
"""
  assert fresh_python(script, XLA_FLAGS="--xla_force_host_platform_device_count=2") == ["0", "True"]


_FAULTS_PER_CALL = """
import resource, sys
if sys.argv[1] == "reuse":
  import cnnjax.ops  # no set-up call: importing applies it
print("cnnjax.ops" in sys.modules)
import jax, jax.numpy as jnp
x, w = jnp.ones((4096, 512)), jnp.ones((512, 4096)) / 512
f = jax.jit(lambda x, w: jnp.sum(jnp.tanh(x @ w) @ w.T))  # a 64 MB temporary
f(x, w).block_until_ready()
faults = []
for _ in range(12):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  f(x, w).block_until_ready()
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults), sorted(faults)[6])  # all calls; the median call (one call may grow the heap once)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_reused_host_memory_spares_the_page_faults_of_every_call(fresh_python):
  (_, plain, _), (applied, _, reused) = fresh_python(_FAULTS_PER_CALL, "plain"), fresh_python(_FAULTS_PER_CALL, "reuse")
  assert applied == "True"
  assert int(plain) > 1000  # glibc maps and zeroes the temporary anew, on every call or at least the first few
  assert int(reused) < 200  # 0: the temporary stays mapped (under load, one call of twelve faulted 2,337 pages once)
