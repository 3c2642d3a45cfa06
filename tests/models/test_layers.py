"""models.layers.BatchNorm: flax's nn.BatchNorm (PyTorch's defaults) in variables, outputs, running statistics
and gradients, in training and evaluation, float32 and bfloat16."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import models
from cnnjax.models import layers
from cnnjax.models.layers import BatchNorm


def _flax(**kwargs):
  return nn.BatchNorm(momentum=0.9, epsilon=1e-5, **kwargs)


def _variables(channels):
  rng = np.random.default_rng(channels)
  f32 = lambda *shape: jnp.asarray(rng.standard_normal(shape), jnp.float32)
  return {"params": {"scale": f32(channels) + 1, "bias": f32(channels)},
          "batch_stats": {"mean": f32(channels), "var": jnp.abs(f32(channels)) + 0.5}}


def test_variables_have_flax_names_shapes_and_initial_values():
  x = jnp.ones((2, 4, 4, 16))
  ours = BatchNorm().init(jax.random.key(0), x)
  theirs = _flax(use_running_average=False).init(jax.random.key(0), x)
  assert jax.tree.structure(ours) == jax.tree.structure(theirs)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("channels", [16, 3])  # on the channel-sums kernel, and off it
@pytest.mark.parametrize("train", [True, False])
def test_outputs_running_statistics_and_gradients_match_flax(channels, train):
  x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 5, 5, channels)) * 3 + 1, jnp.float32)
  variables = _variables(channels)

  def run(module):
    def loss(params):
      y, updates = module.apply({**variables, "params": params}, x, mutable=["batch_stats"])
      return jnp.sum(jnp.sin(y)), (y, updates["batch_stats"])
    return jax.jit(jax.grad(loss, has_aux=True))(variables["params"])

  ours = run(BatchNorm(use_running_average=not train))
  theirs = run(_flax(use_running_average=not train))
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("train", [True, False])
def test_bfloat16_compute_gives_bfloat16_outputs_from_float32_statistics(train):
  x = jnp.asarray(np.random.default_rng(1).standard_normal((4, 5, 5, 16)), jnp.bfloat16)
  variables = _variables(16)
  mutable = ["batch_stats"] if train else False
  ours = BatchNorm(use_running_average=not train, dtype=jnp.bfloat16).apply(variables, x, mutable=mutable)
  theirs = _flax(use_running_average=not train, dtype=jnp.bfloat16).apply(variables, x, mutable=mutable)
  y, want = (ours[0], theirs[0]) if train else (ours, theirs)
  assert y.dtype == want.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(want, np.float32), rtol=2e-2, atol=2e-2)
  if train:
    for a, b in zip(jax.tree.leaves(ours[1]), jax.tree.leaves(theirs[1])):
      assert a.dtype == jnp.float32
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def _loss_and_grads(name, shape):
  """ResNet-style or VGG train-mode loss, its gradients and updated statistics, traced in the current layer mode."""
  model = models.create(name, num_classes=3)
  x = jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)
  variables = model.init(jax.random.key(0), x)

  def loss(params):
    out, updates = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
    return jnp.sum(jnp.sin(out)), updates

  return jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])


@pytest.mark.parametrize("name,shape", [("resnet20", (4, 8, 8, 3)), ("lenet5", (2, 32, 32, 1))])
def test_stock_flax_layers_have_the_same_variables_values_and_gradients(name, shape):
  """Conv, BatchNorm, pooling and the barrier against flax's own (`stock_flax`), through whole networks."""
  ours = _loss_and_grads(name, shape)
  with layers.stock_flax():
    stock = _loss_and_grads(name, shape)
  assert jax.tree.structure(ours) == jax.tree.structure(stock)
  for got, want in zip(jax.tree.leaves(ours), jax.tree.leaves(stock)):
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)


def test_batch_norm_fields_the_one_pass_path_lacks_give_flax_s_layer():
  x = jnp.asarray(np.random.default_rng(1).standard_normal((4, 3, 3, 16)), jnp.float32)
  layer = BatchNorm(use_bias=False, axis=1)
  variables = layer.init(jax.random.key(0), x)
  assert variables["params"]["scale"].shape == (3,) and "bias" not in variables["params"]
  y, _ = layer.apply(variables, x, mutable=["batch_stats"])
  want, _ = nn.BatchNorm(use_running_average=False, use_bias=False, axis=1, momentum=0.9).apply(
      variables, x, mutable=["batch_stats"])
  np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pool,window,strides,padding", [
    ("max_pool", (3, 3), (2, 2), ((1, 1), (1, 1))), ("max_pool", (2, 2), (2, 2), "VALID"),
    ("max_pool", (3, 3), (1, 1), "SAME"), ("avg_pool", (2, 2), (2, 2), "VALID")])
def test_pooling_gives_flax_s_values_and_gradients(pool, window, strides, padding):
  x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 9, 9, 16)), jnp.float32)
  f = lambda pool: jax.jit(jax.value_and_grad(lambda x: jnp.sum(jnp.sin(pool(x, window, strides, padding)))))(x)
  for got, want in zip(f(getattr(layers, pool)), f(getattr(nn, pool))):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
