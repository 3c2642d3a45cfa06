"""The CPU kernels are built only when a program is lowered for the CPU: on a host without a compiler, lowering a
ResNet's train step for 'cuda' runs no build and warns of nothing; lowering it for the CPU tries once, warns, and
the CPU program gets XLA's ops with the kernels' values."""

_SCRIPT = """
import warnings
import jax, jax.numpy as jnp, numpy as np, optax
from jax import lax
from cnnjax import models
from cnnjax.ops import kernels
from cnnjax.ops.kernels import build
from cnnjax.train.state import create_train_state
from cnnjax.train.step import make_train_step

builds = []
def no_compiler():
  builds.append(1)
  raise OSError("no C++ compiler 'g++' on PATH")
build._build = no_compiler

model = models.create("resnet20", num_classes=3)
x = jax.ShapeDtypeStruct((2, 16, 16, 3), jnp.float32)
state = jax.eval_shape(lambda x: create_train_state(model, optax.sgd(0.1), jax.random.key(0), x), x)
loss = lambda outputs, batch: (jnp.mean(jnp.square(outputs)), {})
traced = jax.jit(make_train_step(loss)).trace(state, {"image": x})
with warnings.catch_warnings(record=True) as caught:
  warnings.simplefilter("always")
  traced.lower(lowering_platforms=("cuda",))
  print(len(builds), len(caught))
  cpu = traced.lower(lowering_platforms=("cpu",)).as_text()
  print(len(builds), len(caught), "cnnjax_" in cpu)

rng = np.random.default_rng(0)
a = rng.standard_normal((2, 8, 8, 16)).astype(np.float32)  # no ties: every window has one maximum
w = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
dn = ("NHWC", "HWIO", "NHWC")
conv = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)
grads = lambda f: jax.jit(jax.value_and_grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), argnums=(0, 1)))(a, w)
close = lambda p, q: all(np.allclose(u, v, rtol=1e-4, atol=1e-4) for u, v in zip(jax.tree.leaves(p), jax.tree.leaves(q)))
a64 = a.astype(np.float64)
sums = np.stack([a64.sum((0, 1, 2)), (a64 * a64).sum((0, 1, 2))])
dy = np.cos(a[:, ::2, ::2])
windows = a.reshape(2, 4, 2, 4, 2, 16).transpose(0, 1, 3, 5, 2, 4).reshape(2, 4, 4, 16, 4)
hits = (windows == windows.max(-1, keepdims=True)) * dy[..., None]  # the gradient goes to each window's maximum
pool_grad = hits.reshape(2, 4, 4, 16, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(a.shape)
print(close(grads(lambda x, w: kernels.conv_nhwc(x, w, ((1, 1), (1, 1)))), grads(conv)),
      close(jax.jit(kernels.channel_sums)(a, a), sums),
      close(jax.jit(kernels.max_pool_grad, static_argnums=2)(a, dy, (2, 2)), pool_grad), len(builds))
"""


def test_no_build_and_no_warning_unless_lowered_for_the_cpu_then_xla_ops(fresh_python):
  words = fresh_python(_SCRIPT)
  assert words[:2] == ["0", "0"]  # lowered for 'cuda': no build tried, no warning
  assert words[2:5] == ["1", "1", "False"]  # for the CPU: one try, one warning, no kernel call in the program
  assert words[5:] == ["True", "True", "True", "1"]  # the fallbacks give the kernels' values; no second try
