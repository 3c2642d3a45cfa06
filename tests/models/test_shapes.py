"""Output shapes and dtypes of every model, GoogLeNet's aux outputs, VGG taps (eval_shape)."""

import jax
import jax.numpy as jnp
import pytest

from cnnjax import models
from cnnjax.models.intermediates import intermediates
from cnnjax.models.vgg import tap_names

# Smallest convenient input per model family (eval_shape never compiles, so size is cheap).
INPUTS = {"lenet5": (2, 32, 32, 1), "lenet5_classic": (2, 28, 28, 1), "convnet1d": (2, 50, 4),
          "convnet3d": (2, 6, 16, 16, 1), "nin": (2, 32, 32, 3), "alexnet": (2, 63, 63, 3)}
EXPECTED_NAMES = (
    ["lenet5", "lenet5_classic", "alexnet", "googlenet", "nin", "convnet1d", "convnet3d"]
    + [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]
    + [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
    + [f"{kind}{d}" for kind in ("resnet", "plain") for d in (20, 32, 44, 56, 110)])


def input_shape(name):
  if name in INPUTS:
    return INPUTS[name]
  return (2, 32, 32, 3) if name[-2:] in ("20", "32", "44", "56", "10") else (2, 64, 64, 3)


def abstract_apply(model, shape, **kwargs):
  x = jnp.zeros(shape)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  out = jax.eval_shape(lambda v: model.apply(v, x, **kwargs), variables)
  return variables, out


def test_registered_names():
  # Other modules (detection, embedding) register more names; these are the classifiers.
  assert set(EXPECTED_NAMES) <= set(models.list_models())


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_output_shape(name):
  _, out = abstract_apply(models.create(name, num_classes=7), input_shape(name))
  assert out.shape == (2, 7) and out.dtype == jnp.float32


# One model per class and block type (tracing the deepest nets twice costs seconds for nothing).
@pytest.mark.parametrize("name", ["lenet5_classic", "alexnet", "vgg11_bn", "resnet18", "resnet50",
                                  "resnet20", "plain20", "googlenet", "nin", "convnet1d",
                                  "convnet3d"])
def test_bfloat16_compute_float32_params(name):
  variables, out = abstract_apply(models.create(name, num_classes=7, dtype=jnp.bfloat16),
                                  input_shape(name))
  assert out.shape == (2, 7) and out.dtype == jnp.bfloat16
  leaves = jax.tree_util.tree_leaves(variables)
  assert leaves and all(leaf.dtype == jnp.float32 for leaf in leaves)


@pytest.mark.parametrize("hw,fc6_inputs", [(32, 512), (64, 4 * 512), (96, 9 * 512)])
def test_vgg_fc6_follows_input_size(hw, fc6_inputs):
  variables, out = abstract_apply(models.create("vgg11", num_classes=5), (1, hw, hw, 3))
  assert variables["params"]["fc6"]["kernel"].shape == (fc6_inputs, 4096)
  assert out.shape == (1, 5)


def test_googlenet_aux_outputs():
  train = dict(train=True, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats"])
  model = models.create("googlenet", num_classes=5, aux_logits=True)
  variables, eval_out = abstract_apply(model, (2, 64, 64, 3))
  assert eval_out.shape == (2, 5)
  assert {"aux1", "aux2"} <= set(variables["params"])
  _, ((logits, aux1, aux2), _) = abstract_apply(model, (2, 64, 64, 3), **train)
  assert logits.shape == aux1.shape == aux2.shape == (2, 5)
  plain = models.create("googlenet", num_classes=5, aux_logits=False)
  variables, (out, _) = abstract_apply(plain, (2, 64, 64, 3), **train)
  assert out.shape == (2, 5) and "aux1" not in variables["params"]


def test_vgg_taps_shapes_and_naming():
  model = models.create("vgg16", num_classes=10, pool="avg")
  x = jnp.zeros((1, 64, 64, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  names = [f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)]
  assert [k for k in variables["params"] if k.startswith("conv")] == names
  assert [k for k in variables["params"] if k.startswith("fc")] == ["fc6", "fc7", "fc8"]
  assert variables["params"]["conv5_3"]["kernel"].shape == (3, 3, 512, 512)
  taps = ["conv1_1", "relu3_3", "pool4", "conv5_1"]
  out = jax.eval_shape(lambda v: intermediates(model, v, x, taps), variables)
  assert {k: v.shape for k, v in out.items()} == {
      "conv1_1": (1, 64, 64, 64), "relu3_3": (1, 16, 16, 256), "pool4": (1, 4, 4, 512),
      "conv5_1": (1, 4, 4, 512)}
  assert tap_names((1, 1))[:3] == ["conv1_1", "relu1_1", "pool1"]


def test_yolo_takes_a_backbone_from_the_zoo():
  model = models.create("yolo_tiny", num_classes=3, backbone="resnet18", backbone_kwargs={"stage_sizes": (2, 2)},
                 widths=(32,))
  x = jnp.zeros((2, 96, 96, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
  out = jax.eval_shape(lambda v: model.apply(v, x), variables)
  assert out.shape == (2, 12, 12, 3, 8)  # stem /4, second stage /2: a 12x12 grid
  trunk = variables["params"]["ResNet_0"]
  assert {"conv1", "layer1_0", "layer2_1"} <= set(trunk) and "layer3_0" not in trunk and "fc" not in trunk
  features = models.create("resnet18", num_classes=1, features_only=True)
  fmap = jax.eval_shape(lambda: features.init_with_output(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)))[0])
  assert fmap.shape == (1, 2, 2, 512)
