"""Multiply counts of the conv and dense layers of a Flax module, without compiling.

Convention: one multiply-add (MAC) counts as one multiply; FLOPs = 2 x multiplies.
Bias additions, normalisation, activations and pooling are not counted. Padded
positions of a conv count (as in the course's Inception bottleneck arithmetic).
"""

from collections.abc import Sequence
import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class LayerCost:
  """One call of a Conv, ConvTranspose or Dense layer."""
  name: str  # module path, e.g. 'inception_3a/branch_5x5/Conv_1'
  kind: str  # 'Conv', 'ConvTranspose' or 'Dense' (the class name for subclasses)
  kernel_shape: tuple[int, ...]
  output_shape: tuple[int, ...]
  multiplies: int


@dataclasses.dataclass(frozen=True)
class FlopReport:
  """Per-layer multiplies, in call order, with totals."""
  layers: tuple[LayerCost, ...]

  @property
  def multiplies(self) -> int:
    return sum(layer.multiplies for layer in self.layers)

  @property
  def flops(self) -> int:
    return 2 * self.multiplies

  def table(self) -> str:
    """A plain-text table of the layers and the total."""
    total = max(self.multiplies, 1)
    rows = [("layer", "kind", "kernel", "output", "multiplies", "share")]
    rows += [(l.name, l.kind, str(l.kernel_shape), str(l.output_shape), f"{l.multiplies:,}",
              f"{100 * l.multiplies / total:.1f}%") for l in self.layers]
    rows.append(("total", "", "", "", f"{self.multiplies:,}", f"FLOPs {self.flops:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _layer_multiplies(module: nn.Module, kernel_shape: Sequence[int], inputs: Any,
                      output_shape: Sequence[int]) -> int:
  if isinstance(module, nn.ConvTranspose):
    # Every input position scatters one full kernel (input positions x kernel size).
    return math.prod(jnp.shape(inputs)[:-1]) * math.prod(kernel_shape)
  # Conv (kernel (*k, C_in / groups, C_out), so groups are included) and Dense
  # (kernel (C_in, C_out)): every output position takes one kernel's worth of MACs
  # per output channel.
  return math.prod(output_shape[:-1]) * math.prod(kernel_shape)


def _as_input(x: Any) -> Any:
  if isinstance(x, tuple) and all(isinstance(d, int) for d in x):
    return jax.ShapeDtypeStruct(x, jnp.float32)
  return x


def count_flops(module: nn.Module, *inputs: Any, **apply_kwargs: Any) -> FlopReport:
  """Multiplies and FLOPs of `module(*inputs, **apply_kwargs)`, per layer, traced abstractly.

  Args:
    module: any Flax linen module; every `nn.Conv`, `nn.ConvTranspose` and `nn.Dense`
      call inside it is counted (shared layers once per call).
    *inputs: arrays, `jax.ShapeDtypeStruct`s or shape tuples (float32); the counts
      are for the whole batch given.
    **apply_kwargs: passed to the module, e.g. `train=False`.
  """
  inputs = tuple(_as_input(x) for x in inputs)
  layers: list[LayerCost] = []
  active: set[int] = set()  # a subclass calling super().__call__ is one layer

  def interceptor(next_fun, args, kwargs, context):
    module_ = context.module
    if (context.method_name != "__call__" or id(module_) in active
        or not isinstance(module_, (nn.Conv, nn.ConvTranspose, nn.Dense))):
      return next_fun(*args, **kwargs)
    active.add(id(module_))
    try:
      out = next_fun(*args, **kwargs)
    finally:
      active.discard(id(module_))
    kernel_shape = tuple(jnp.shape(nn.meta.unbox(module_.get_variable("params", "kernel"))))
    layers.append(LayerCost(
        name="/".join(module_.path) or type(module_).__name__,
        kind=type(module_).__name__, kernel_shape=kernel_shape, output_shape=tuple(out.shape),
        multiplies=_layer_multiplies(module_, kernel_shape, args[0], out.shape)))
    return out

  def init(*xs):
    key = jax.random.key(0)
    return module.init({"params": key, "dropout": key}, *xs, **apply_kwargs)

  with nn.intercept_methods(interceptor):
    jax.eval_shape(init, *inputs)
  return FlopReport(tuple(layers))
