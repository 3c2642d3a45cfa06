"""Exact parameter counts, torchvision's published ones and closed forms, via eval_shape."""

import jax
import jax.numpy as jnp
import pytest

from cnnjax import models
from cnnjax.models.inception import InceptionModule


def n_params(model, shape):
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape)))
  return models.count_params(variables["params"])


# torchvision's model cards (BatchNorm scale+bias included, running statistics not).
TORCHVISION = {
    "alexnet": 61_100_840, "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544,
    "vgg19": 143_667_240, "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736,
    "vgg16_bn": 138_365_992, "vgg19_bn": 143_678_248, "resnet18": 11_689_512,
    "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_counts(name):
  assert n_params(models.create(name, num_classes=1000), (1, 224, 224, 3)) == TORCHVISION[name]


def conv_bn(cin, cout, k):
  """A bias-free k x k conv followed by BatchNorm (scale + bias)."""
  return k * k * cin * cout + 2 * cout


def dense(cin, cout):
  return cin * cout + cout


def cifar_resnet_count(depth, num_classes):
  """He et al. sec. 4.2: 3x3 stem, 3 stages of 2n 3x3 convs (16/32/64), option A adds nothing."""
  n = (depth - 2) // 6
  total = conv_bn(3, 16, 3) + dense(64, num_classes)
  cin = 16
  for width in (16, 32, 64):
    total += conv_bn(cin, width, 3) + (2 * n - 1) * conv_bn(width, width, 3)
    cin = width
  return total


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_cifar_resnet_and_plain_counts(depth):
  expected = cifar_resnet_count(depth, 10)
  assert n_params(models.create(f"resnet{depth}", num_classes=10), (1, 32, 32, 3)) == expected
  # Option A shortcuts are parameter-free, so the plain twin has exactly the same parameters.
  assert n_params(models.create(f"plain{depth}", num_classes=10), (1, 32, 32, 3)) == expected


@pytest.mark.parametrize("hidden,shape,num_classes", [((60,), (1, 32, 32, 1), 10), ((56, 32), (1, 32, 32, 1), 10),
                                                      ((7, 5, 3), (1, 8, 6, 3), 4)])
def test_mlp_counts(hidden, shape, num_classes):
  widths = [shape[1] * shape[2] * shape[3], *hidden, num_classes]
  expected = sum(dense(a, b) for a, b in zip(widths, widths[1:]))
  assert n_params(models.create("mlp", num_classes=num_classes, hidden=hidden), shape) == expected


def test_mlp_default_has_lenet5_capacity():
  lenet, mlp = (n_params(models.create(name, num_classes=10), (1, 32, 32, 1)) for name in ("lenet5", "mlp"))
  assert (lenet, mlp) == (61_706, 1024 * 60 + 60 + 60 * 10 + 10)


def test_resnet20_matches_paper():
  assert round(cifar_resnet_count(20, 10) / 1e6, 2) == 0.27  # table 6 of He et al.


def test_lenet5_counts():
  for name in ("lenet5", "lenet5_classic"):
    assert n_params(models.create(name, num_classes=10), (1, 32, 32, 1)) == 61_706


INCEPTION = [(64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), (192, 96, 208, 16, 48, 64),
             (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
             (256, 160, 320, 32, 128, 128), (256, 160, 320, 32, 128, 128),
             (384, 192, 384, 48, 128, 128)]


def inception_count(cin, c1, c3r, c3, c5r, c5, pp):
  return (conv_bn(cin, c1, 1) + conv_bn(cin, c3r, 1) + conv_bn(c3r, c3, 3) + conv_bn(cin, c5r, 1)
          + conv_bn(c5r, c5, 5) + conv_bn(cin, pp, 1))


def test_inception_module_count():
  expected = inception_count(192, *INCEPTION[0])
  assert n_params(InceptionModule(*INCEPTION[0]), (1, 8, 8, 192)) == expected


@pytest.mark.parametrize("aux_logits", [False, True])
def test_googlenet_count(aux_logits):
  k = 1000
  total = conv_bn(3, 64, 7) + conv_bn(64, 64, 1) + conv_bn(64, 192, 3) + dense(1024, k)
  cin, widths = 192, {}
  for i, w in enumerate(INCEPTION):
    total += inception_count(cin, *w)
    cin = w[0] + w[2] + w[4] + w[5]
    widths[i] = cin
  if aux_logits:  # after 4a (512 channels) and 4d (528): 1x1 conv 128 on 4x4, fc 1024, fc k
    total += sum(conv_bn(widths[i], 128, 1) + dense(4 * 4 * 128, 1024) + dense(1024, k)
                 for i in (2, 5))
  model = models.create("googlenet", num_classes=k, aux_logits=aux_logits)
  assert n_params(model, (1, 64, 64, 3)) == total
