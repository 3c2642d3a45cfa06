"""The one way to read activations out of a zoo model: by name, in one forward pass.

A name is one of
- a submodule's path, for its output: `'conv1_1'`, `'backbone/stage2'`, `'layer3/block1'`;
- a path and `.input`, for what that submodule reads: `'fc3.input'` (a frozen trunk's features);
- a value the model sows into `'intermediates'`: VGG's `'relu1_1'` and `'pool3'`.

Under `jax.jit` only the layers the names need are computed (XLA drops the rest).
"""

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax

INPUT = ".input"


def intermediates(model: nn.Module, variables: Mapping, x: Any, names: Sequence[str], *,
                  train: bool = False) -> dict[str, jax.Array]:
  """`{name: activation}` of `model.apply(variables, x, train=train)` for each of `names`.

  Raises:
    ValueError: a name the model has no activation for (the message lists those it has).
  """
  names = [names] if isinstance(names, str) else list(names)
  if not names:
    raise ValueError("names is empty: ask for at least one activation")
  outputs = {n for n in names if not n.endswith(INPUT)}
  inputs = {n[:-len(INPUT)] for n in names if n.endswith(INPUT)}
  captured: dict[str, Any] = {}

  def capture(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__":
      path = "/".join(context.module.path)
      if path in inputs:
        captured.setdefault(path + INPUT, args[0])
      if path in outputs:
        captured.setdefault(path, out)
    return out

  with nn.intercept_methods(capture):
    _, state = model.apply(variables, x, train=train, mutable=["intermediates"])
  sown = _sown(state.get("intermediates", {}))
  found = {n: captured[n] if n in captured else sown.get(n) for n in names}
  missing = [n for n, v in found.items() if v is None]
  if missing:
    raise ValueError(f"no activation named {missing}; this model has {available(model, variables, x)}")
  return found


def available(model: nn.Module, variables: Mapping, x: Any) -> list[str]:
  """Every name `intermediates` accepts for this model (submodule paths, then sown values), in call order."""
  paths: list[str] = []

  def record(next_fun, args, kwargs, context):
    if context.method_name == "__call__":
      path = "/".join(context.module.path)  # '' for the model itself
      if path and path not in paths:
        paths.append(path)
    return next_fun(*args, **kwargs)

  def run(v, x):
    with nn.intercept_methods(record):
      return model.apply(v, x, train=False, mutable=["intermediates"])[1]

  state = jax.eval_shape(run, variables, x)
  return paths + list(_sown(state.get("intermediates", {})))


def _sown(tree: Mapping, prefix: str = "") -> dict[str, Any]:
  """Sown values by path: `sow` keeps a tuple of the values sown under a name; the last one counts."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, tuple):
      out[prefix + key] = value[-1]
    elif isinstance(value, Mapping):
      out.update(_sown(value, f"{prefix}{key}/"))
  return out
