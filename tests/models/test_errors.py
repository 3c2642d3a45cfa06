"""Bad input raises a ValueError that names the argument, the value and what was expected."""

import jax
import jax.numpy as jnp
import pytest

from cnnjax import models
from cnnjax.models.intermediates import intermediates


def init_shapes(model, shape, **kwargs):
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), **kwargs))


def test_unknown_model_lists_known_ones():
  with pytest.raises(ValueError, match=r"unknown model name 'resnet19'.*resnet18.*vgg16"):
    models.create("resnet19", num_classes=10)


@pytest.mark.parametrize("name,shape,match", [
    ("lenet5", (32, 32, 1), r"x must have rank 4 \(N, H, W, C\), got shape \(32, 32, 1\)"),
    ("resnet18", (1, 3, 64, 64, 3), r"x must have rank 4"),
    ("convnet1d", (2, 16, 16, 3), r"x must have rank 3 \(N, L, C\)"),
    ("convnet3d", (2, 16, 16, 3), r"x must have rank 5 \(N, D, H, W, C\)"),
    ("googlenet", (0, 64, 64, 3), r"positive sizes.*\(0, 64, 64, 3\)"),
    ("resnet20", (2, 32, 0, 3), r"positive sizes"),
    ("lenet5", (1, 15, 32, 1), r"spatial size \(15, 32\).*at least 16"),
    ("alexnet", (1, 62, 62, 3), r"at least 63"),
    ("vgg16", (1, 16, 16, 3), r"at least 32"),
])
def test_bad_input_shape(name, shape, match):
  with pytest.raises(ValueError, match=match):
    init_shapes(models.create(name, num_classes=10), shape)


@pytest.mark.parametrize("name,shape", [("lenet5", (1, 32, 32, 1)), ("googlenet", (1, 32, 32, 3)),
                                        ("nin", (1, 32, 32, 3)), ("convnet1d", (1, 20, 2)),
                                        ("vgg11", (1, 32, 32, 3)), ("resnet20", (1, 8, 8, 3))])
def test_channel_count_checked_against_parameters(name, shape):
  model = models.create(name, num_classes=10)
  variables = init_shapes(model, shape)
  wrong = shape[:-1] + (shape[-1] + 1,)
  with pytest.raises(ValueError, match=rf"x has {wrong[-1]} channels.*expect {shape[-1]}"):
    jax.eval_shape(lambda v: model.apply(v, jnp.zeros(wrong)), variables)


def test_vgg_unknown_tap_lists_valid_ones():
  model = models.create("vgg11", num_classes=10)
  variables = init_shapes(model, (1, 32, 32, 3))
  with pytest.raises(ValueError, match=r"no activation named \['relu1_2'\]; this model has \[.*'conv1_1'.*'relu1_1'"):
    jax.eval_shape(lambda v: intermediates(model, v, jnp.zeros((1, 32, 32, 3)), ["relu1_2"]), variables)


@pytest.mark.parametrize("name,kwargs,match", [
    ("vgg16", {"pool": "median"}, r"pool must be one of \['max', 'avg'\], got 'median'"),
    ("lenet5", {"activation": "gelu"}, r"activation must be one of"),
    ("resnet18", {"block": "wide"}, r"block must be one of \['basic', 'bottleneck'\]"),
])
def test_bad_field(name, kwargs, match):
  with pytest.raises(ValueError, match=match):
    init_shapes(models.create(name, num_classes=10, **kwargs), (1, 32, 32, 3))


def test_bad_cifar_depth_and_classes():
  from cnnjax.models.resnet import cifar_resnet
  with pytest.raises(ValueError, match=r"depth must be 6n\+2.*got 21"):
    cifar_resnet(21)
  with pytest.raises(ValueError, match=r"num_classes must be a positive integer, got 0"):
    models.create("resnet20", num_classes=0)


@pytest.mark.parametrize("name,init_size,size,layer", [("lenet5", 32, 64, "fc1"), ("vgg11", 32, 64, "fc6")])
def test_an_input_size_other_than_the_initialisation_names_both(name, init_size, size, layer):
  model = models.create(name, num_classes=3)
  variables = init_shapes(model, (1, init_size, init_size, 1))
  with pytest.raises(ValueError, match=rf"input of shape \(1, {size}, {size}, 1\) gives {layer} a .* feature map "
                                       r"\(\d+ features\), but the model was initialised for \d+"):
    jax.eval_shape(lambda v: model.apply(v, jnp.zeros((1, size, size, 1))), variables)
