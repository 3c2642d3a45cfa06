"""count_flops: the course's Inception bottleneck figures and torch's FlopCounterMode."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from cnnjax.ops import count_flops


class Bottleneck(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.Conv(16, (1, 1), name="reduce")(x)
    return nn.Conv(32, (5, 5), padding="SAME", name="conv5x5")(x)


def test_course_inception_bottleneck_figures():
  direct = count_flops(nn.Conv(32, (5, 5), padding="SAME"), (1, 28, 28, 192))
  assert direct.multiplies == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
  assert direct.flops == 2 * 120_422_400
  report = count_flops(Bottleneck(), jax.ShapeDtypeStruct((1, 28, 28, 192), jnp.float32))
  assert report.multiplies == 12_443_648
  assert [(l.name, l.kind, l.kernel_shape, l.output_shape) for l in report.layers] == [
      ("reduce", "Conv", (1, 1, 192, 16), (1, 28, 28, 16)),
      ("conv5x5", "Conv", (5, 5, 16, 32), (1, 28, 28, 32))]
  assert [l.multiplies for l in report.layers] == [28 * 28 * 16 * 192, 28 * 28 * 32 * 25 * 16]
  assert "12,443,648" in report.table()


def _torch_multiplies(fn, *args):
  with FlopCounterMode(display=False) as counter:
    fn(*args)
  return counter.get_total_flops() // 2  # torch counts 2 FLOPs per multiply-add


@pytest.mark.parametrize("layer,x_shape,torch_fn", [
    (nn.Conv(6, (3, 3), strides=2, padding=1), (2, 9, 8, 4),
     lambda x: F.conv2d(x, torch.zeros(6, 4, 3, 3), stride=2, padding=1)),
    (nn.Conv(8, (3, 3), feature_group_count=4, padding="VALID"), (1, 7, 7, 4),
     lambda x: F.conv2d(x, torch.zeros(8, 1, 3, 3), groups=4)),
    (nn.Conv(5, (3,), padding="VALID"), (3, 10, 2), lambda x: F.conv1d(x, torch.zeros(5, 2, 3))),
    (nn.Conv(4, (2, 3, 3), padding="VALID"), (1, 5, 6, 6, 2), lambda x: F.conv3d(x, torch.zeros(4, 2, 2, 3, 3))),
    (nn.ConvTranspose(3, (4, 4), strides=(2, 2), padding="VALID"), (2, 5, 5, 6),
     lambda x: F.conv_transpose2d(x, torch.zeros(6, 3, 4, 4), stride=2)),
    (nn.Dense(7), (3, 11), lambda x: F.linear(x, torch.zeros(7, 11))),
])
def test_layers_match_torch_flop_counter(layer, x_shape, torch_fn):
  channels_first = (x_shape[0], x_shape[-1], *x_shape[1:-1])
  expected = _torch_multiplies(torch_fn, torch.zeros(channels_first))
  assert count_flops(layer, x_shape).multiplies == expected


class SmallNet(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool = False):
    shared = nn.Dense(4, name="shared")
    x = nn.Conv(4, (3, 3), padding="VALID", name="conv")(x)
    x = nn.BatchNorm(use_running_average=not train)(x)
    x = nn.Dropout(0.5, deterministic=not train)(x)
    x = x.mean(axis=(1, 2))
    return shared(shared(x))


def test_norm_dropout_ignored_and_shared_layers_counted_per_call():
  report = count_flops(SmallNet(), (2, 6, 6, 3), train=True)
  assert [l.name for l in report.layers] == ["conv", "shared", "shared"]
  assert report.multiplies == 2 * 4 * 4 * 3 * 3 * 3 * 4 + 2 * (2 * 4 * 4)
