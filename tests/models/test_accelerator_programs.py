"""Every zoo model's train step lowered from the CPU for 'cuda' and 'tpu' is the program stock Flax layers give:
no CPU kernel call, no fusion-barrier loop, and the same convolutions, dot products, reductions and pools as the
same network on `nn.Conv`/`nn.BatchNorm`/`nn.max_pool` (`layers.stock_flax()`). Lowering only (eval_shape
parameters, no compile), so it runs on a CPU-only jaxlib."""

import collections
import re

import jax
import jax.numpy as jnp
import optax
import pytest

from cnnjax import models
from cnnjax.models import layers
from cnnjax.train.state import create_train_state
from cnnjax.train.step import make_train_step

PLATFORMS = ("cuda", "tpu")
# StableHLO ops whose count must match stock Flax's; custom calls and while loops are CPU machinery.
COUNTED = ("convolution", "dot_general", "reduce", "reduce_window", "select_and_scatter", "custom_call", "while")
_INPUTS = {"lenet5": (2, 32, 32, 1), "lenet5_classic": (2, 28, 28, 1), "convnet1d": (2, 50, 4),
           "convnet3d": (2, 6, 16, 16, 1), "alexnet": (2, 63, 63, 3), "yolo_tiny": (2, 64, 64, 3), "mlp": (2, 32, 32, 1)}
_NO_CONVOLUTION = {"mlp"}  # the fully connected baseline


def _input_shape(name: str) -> tuple[int, ...]:
  cifar = name.startswith(("resnet", "plain")) and name[-2:] in ("20", "32", "44", "56", "10")
  return _INPUTS.get(name, (2, 32, 32, 3) if cifar or name in ("nin", "embedding_net", "localizer") else
                     (2, 64, 64, 3))


def _squares(outputs, batch):
  """Any model's outputs to one loss: the mean square of every output array."""
  del batch
  loss = sum(jnp.mean(jnp.square(leaf.astype(jnp.float32))) for leaf in jax.tree_util.tree_leaves(outputs))
  return loss, {}


def _op_counts(name: str, platforms: tuple[str, ...]) -> collections.Counter:
  """StableHLO op counts of `name`'s train step lowered for `platforms` at once (one program: any op that differs
  between them would be a conditional on the platform, its branches counted alike). Traced afresh, so
  `stock_flax` applies."""
  model = models.create(name, num_classes=5)
  x = jax.ShapeDtypeStruct(_input_shape(name), jnp.float32)
  state = jax.eval_shape(lambda x: create_train_state(model, optax.sgd(0.1), jax.random.key(0), x), x)
  text = jax.jit(make_train_step(_squares)).trace(state, {"image": x}).lower(lowering_platforms=platforms).as_text()
  return collections.Counter(re.findall(r"stablehlo\.([a-z_]+)", text))


# Deeper variants repeat the layers of a shallower one (tracing ResNet-152 four times costs a minute for nothing).
_REPEATS = {"resnet34": "resnet18", "resnet101": "resnet50", "resnet152": "resnet50", "vgg13": "vgg11",
            "vgg16": "vgg11", "vgg19": "vgg11", "vgg13_bn": "vgg11_bn", "vgg16_bn": "vgg11_bn", "vgg19_bn": "vgg11_bn",
            **{f"{kind}{depth}": f"{kind}20" for kind in ("resnet", "plain") for depth in (32, 44, 56, 110)}}


def test_every_zoo_model_or_a_shallower_twin_is_checked():
  names = set(models.list_models())
  assert set(_REPEATS) <= names and set(_REPEATS.values()) <= names - set(_REPEATS)


@pytest.mark.parametrize("name", sorted(set(models.list_models()) - set(_REPEATS)))
def test_accelerator_programs_are_stock_flax(name):
  cnnjax_ops = _op_counts(name, PLATFORMS)
  with layers.stock_flax():
    stock_ops = _op_counts(name, PLATFORMS)
  assert (stock_ops["convolution"] > 0) == (name not in _NO_CONVOLUTION)
  assert stock_ops["custom_call"] == stock_ops["while"] == 0
  assert {op: cnnjax_ops[op] for op in COUNTED} == {op: stock_ops[op] for op in COUNTED}


def test_the_cpu_program_is_not_stock():
  """The comparison can fail: for the CPU the same step has kernel calls and fusion-barrier loops."""
  cpu = _op_counts("resnet20", ("cpu",))
  assert cpu["custom_call"] > 0 and cpu["while"] > 0
