"""LeNet-5 and ResNet blocks against the same networks written in PyTorch with copied weights."""

import jax
import numpy as np
import pytest
import torch
from torch import nn as tnn
from torch.nn import functional as F

from cnnjax import models
from cnnjax.models.layers import adaptive_avg_pool
from cnnjax.models.resnet import BasicBlock, Bottleneck


def to_flax(module: tnn.Module) -> dict:
  """{'params', 'batch_stats'} from a torch module whose submodule names equal the flax ones."""
  params, stats = {}, {}
  for name, m in module.named_modules():
    t = lambda a: a.detach().numpy().copy()  # torch updates running stats in place
    if isinstance(m, tnn.Conv2d):
      params[name] = {"kernel": t(m.weight).transpose(2, 3, 1, 0)}  # OIHW -> HWIO
      if m.bias is not None:
        params[name]["bias"] = t(m.bias)
    elif isinstance(m, tnn.Linear):
      params[name] = {"kernel": t(m.weight).T, "bias": t(m.bias)}
    elif isinstance(m, tnn.BatchNorm2d):
      params[name] = {"scale": t(m.weight), "bias": t(m.bias)}
      stats[name] = {"mean": t(m.running_mean), "var": t(m.running_var)}
  return {"params": params, "batch_stats": stats} if stats else {"params": params}


def randomize_bn(module: tnn.Module, gen: torch.Generator) -> None:
  """Non-trivial BatchNorm affine parameters and running statistics."""
  with torch.no_grad():
    for m in module.modules():
      if isinstance(m, tnn.BatchNorm2d):
        c = m.num_features
        m.weight.copy_(1 + 0.3 * torch.randn(c, generator=gen))
        m.bias.copy_(0.3 * torch.randn(c, generator=gen))
        m.running_mean.copy_(0.3 * torch.randn(c, generator=gen))
        m.running_var.copy_(0.5 + torch.rand(c, generator=gen))


def assert_close(actual, expected, rtol=1e-5):
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape
  err = np.max(np.abs(actual - expected)) / np.max(np.abs(expected))
  assert err <= rtol, err


class TorchLeNet(tnn.Module):

  def __init__(self, classic: bool):
    super().__init__()
    self.conv1, self.conv2 = tnn.Conv2d(1, 6, 5), tnn.Conv2d(6, 16, 5)
    self.fc1, self.fc2, self.fc3 = tnn.Linear(400, 120), tnn.Linear(120, 84), tnn.Linear(84, 10)
    self.act = (lambda x: 1.7159 * torch.tanh(2 * x / 3)) if classic else torch.relu
    self.pool = F.avg_pool2d if classic else F.max_pool2d

  def forward(self, x):
    x = self.pool(self.act(self.conv1(x)), 2)
    x = self.pool(self.act(self.conv2(x)), 2).flatten(1)  # (C, H, W) order
    return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


@pytest.mark.parametrize("name", ["lenet5", "lenet5_classic"])
def test_lenet5_matches_torch(name):
  torch.manual_seed(0)
  net = TorchLeNet(classic=name == "lenet5_classic").eval()
  variables = to_flax(net)
  # torch flattens (C, H, W); the flax model flattens NHWC, i.e. (H, W, C).
  w = net.fc1.weight.detach().numpy().reshape(120, 16, 5, 5)
  variables["params"]["fc1"]["kernel"] = w.transpose(2, 3, 1, 0).reshape(400, 120)
  x = np.random.default_rng(0).normal(size=(4, 32, 32, 1)).astype(np.float32)
  with torch.no_grad():
    expected = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
  actual = jax.jit(models.create(name, num_classes=10).apply)(variables, x)
  # Both convolutions run as banded matrix products on the CPU: the same sums in float32, in
  # another order (exact in float64: tests/ops/test_xla_cpu.py).
  assert_close(actual, expected, rtol=5e-5)


class TorchBlock(tnn.Module):
  """torchvision's BasicBlock / Bottleneck (v1.5), plus option A and no-shortcut variants."""

  def __init__(self, kind, cin, planes, stride, shortcut):
    super().__init__()
    conv = lambda i, o, k, s=1: tnn.Conv2d(i, o, k, s, (k - 1) // 2, bias=False)
    self.kind, self.stride, self.shortcut = kind, stride, shortcut
    if kind == "basic":
      self.cout = planes
      self.conv1, self.conv2 = conv(cin, planes, 3, stride), conv(planes, planes, 3)
    else:
      self.cout = 4 * planes
      self.conv1, self.conv2 = conv(cin, planes, 1), conv(planes, planes, 3, stride)
      self.conv3, self.bn3 = conv(planes, self.cout, 1), tnn.BatchNorm2d(self.cout)
    self.bn1, self.bn2 = tnn.BatchNorm2d(planes), tnn.BatchNorm2d(planes)
    self.changes = stride != 1 or cin != self.cout
    if shortcut == "projection" and self.changes:
      self.downsample_conv = conv(cin, self.cout, 1, stride)
      self.downsample_bn = tnn.BatchNorm2d(self.cout)

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    if self.kind == "bottleneck":
      y = self.bn3(self.conv3(F.relu(y)))
    if self.shortcut == "none":
      return F.relu(y)
    if self.changes and self.shortcut == "projection":
      x = self.downsample_bn(self.downsample_conv(x))
    elif self.changes:
      x = x[:, :, ::self.stride, ::self.stride]
      x = F.pad(x, (0, 0, 0, 0, 0, self.cout - x.shape[1]))
    return F.relu(y + x)


BLOCKS = [("basic", 8, 8, 1, "projection"), ("basic", 8, 16, 2, "projection"),
          ("basic", 8, 16, 2, "pad"), ("basic", 8, 16, 2, "none"),
          ("bottleneck", 16, 8, 2, "projection")]


@pytest.mark.parametrize("kind,cin,planes,stride,shortcut", BLOCKS)
def test_resnet_block_matches_torch(kind, cin, planes, stride, shortcut):
  gen = torch.Generator().manual_seed(1)
  torch.manual_seed(1)
  net = TorchBlock(kind, cin, planes, stride, shortcut)
  randomize_bn(net, gen)
  variables = to_flax(net)
  block = (BasicBlock if kind == "basic" else Bottleneck)(planes, strides=stride, shortcut=shortcut)
  x = np.random.default_rng(2).normal(size=(3, 8, 8, cin)).astype(np.float32)
  xt = torch.from_numpy(x.transpose(0, 3, 1, 2))
  with torch.no_grad():
    expected_eval = net.eval()(xt).numpy().transpose(0, 2, 3, 1)
    expected_train = net.train()(xt).numpy().transpose(0, 2, 3, 1)
  apply = jax.jit(block.apply, static_argnames=("train", "mutable"))
  assert_close(apply(variables, x), expected_eval)
  actual_train, updates = apply(variables, x, train=True, mutable=("batch_stats",))
  assert_close(actual_train, expected_train)
  # Same running-mean momentum as PyTorch (its running var uses the unbiased estimate, so skip it).
  for name, stats in updates["batch_stats"].items():
    assert_close(stats["mean"], getattr(net, name).running_mean.numpy())
  assert jax.tree_util.tree_structure(updates["batch_stats"]) == jax.tree_util.tree_structure(
      variables["batch_stats"])


@pytest.mark.parametrize("in_hw,out_hw", [((7, 9), (4, 6)), ((1, 3), (6, 6)), ((14, 14), (4, 4))])
def test_adaptive_avg_pool_matches_torch(in_hw, out_hw):
  x = np.random.default_rng(3).normal(size=(2, *in_hw, 5)).astype(np.float32)
  expected = F.adaptive_avg_pool2d(torch.from_numpy(x.transpose(0, 3, 1, 2)), out_hw)
  assert_close(adaptive_avg_pool(x, out_hw), expected.numpy().transpose(0, 2, 3, 1))
