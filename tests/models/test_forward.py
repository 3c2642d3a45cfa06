"""Real forward passes of tiny models: BatchNorm statistics, plain vs residual, VGG tap values."""

import jax
import numpy as np
import pytest

from cnnjax import models
from cnnjax.models.intermediates import intermediates


def random_variables(model, x, seed=0, **kwargs):
  """Variables of `model` filled with NumPy draws (compiling `init` costs more than the test)."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, **kwargs))

  def fill(path, leaf):
    name = path[-1].key
    if name == "kernel":
      return rng.normal(size=leaf.shape).astype(np.float32) / np.sqrt(np.prod(leaf.shape[:-1]))
    if name in ("scale", "var"):
      return np.ones(leaf.shape, np.float32)
    return np.zeros(leaf.shape, np.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def jit_apply(model):
  return jax.jit(model.apply, static_argnames=("train", "mutable"))


@pytest.fixture(scope="module")
def cifar_pair():
  """resnet20 and plain20 sharing one set of variables, on a 2x8x8x3 batch."""
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  resnet = models.create("resnet20", num_classes=10)
  plain = models.create("plain20", num_classes=10)
  variables = random_variables(resnet, x)
  return x, resnet, plain, variables


def test_train_updates_batch_stats(cifar_pair):
  x, resnet, _, variables = cifar_pair
  logits, updates = jit_apply(resnet)(variables, x, train=True, mutable=("batch_stats",))
  assert logits.shape == (2, 10) and np.all(np.isfinite(logits))
  before, after = variables["batch_stats"], updates["batch_stats"]
  assert jax.tree_util.tree_structure(before) == jax.tree_util.tree_structure(after)
  # Momentum 0.9 from mean 0: the stem's new running mean is a tenth of the batch mean.
  stem = jax.lax.conv_general_dilated(x, variables["params"]["conv1"]["kernel"], (1, 1),
                                      ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(after["bn1"]["mean"], 0.1 * stem.mean(axis=(0, 1, 2)), rtol=1e-5,
                             atol=1e-7)
  changed = jax.tree_util.tree_map(lambda a, b: bool(np.any(a != b)), before, after)
  assert all(jax.tree_util.tree_leaves(changed))


def test_plain_differs_only_by_shortcuts(cifar_pair):
  x, resnet, plain, variables = cifar_pair
  plain_vars = jax.eval_shape(lambda: plain.init(jax.random.key(1), x))
  same_layout = jax.tree_util.tree_map(lambda a, b: a.shape == b.shape, variables, plain_vars)
  assert all(jax.tree_util.tree_leaves(same_layout))
  # The same weights give different outputs: only the shortcuts are missing.
  assert not np.allclose(jit_apply(resnet)(variables, x), jit_apply(plain)(variables, x))


def test_vgg_taps_values():
  model = models.create("vgg11", num_classes=10)
  x = jax.random.normal(jax.random.key(0), (1, 32, 32, 3))
  taps = ["conv1_1", "relu1_1", "pool1", "conv2_1"]
  variables = random_variables(model, x)
  read = lambda m: jax.jit(lambda v, x: intermediates(m, v, x, taps))
  out = read(model)(variables, x)
  assert sorted(out) == sorted(taps)
  np.testing.assert_array_equal(out["relu1_1"], np.maximum(out["conv1_1"], 0))
  r = np.asarray(out["relu1_1"])
  np.testing.assert_array_equal(out["pool1"], r.reshape(1, 16, 2, 16, 2, 64).max(axis=(2, 4)))
  avg = read(models.create("vgg11", num_classes=10, pool="avg"))(variables, x)
  np.testing.assert_allclose(avg["pool1"], r.reshape(1, 16, 2, 16, 2, 64).mean(axis=(2, 4)),
                             rtol=1e-6, atol=1e-7)


def test_dropout_is_seeded_by_the_dropout_rng():
  model = models.create("nin", num_classes=3, mlpconvs=((3, (4, 4)), (3, (4,))))
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  variables = random_variables(model, x)
  apply = jit_apply(model)
  run = lambda seed: apply(variables, x, train=True, rngs={"dropout": jax.random.key(seed)},
                           mutable=("batch_stats",))[0]
  np.testing.assert_array_equal(run(0), run(0))
  assert not np.allclose(run(0), run(1))
