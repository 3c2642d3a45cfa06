"""Models by name: `create`, `list_models`, `count_params`."""

from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable:
  """Registers a factory `fn(*, num_classes, **kwargs) -> nn.Module` under `name`."""

  def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    if name in _REGISTRY:
      raise ValueError(f"model name {name!r} is already registered")
    _REGISTRY[name] = factory
    return factory

  return wrap


def list_models() -> list[str]:
  """Sorted names of every registered model."""
  _register_zoo()
  return sorted(_REGISTRY)


def create(name: str, *, num_classes: int, **kwargs: Any) -> nn.Module:
  """Builds the model registered as `name`.

  Raises:
    ValueError: unknown `name` (the message lists the known ones) or
      `num_classes` that is not a positive integer.
  """
  _register_zoo()
  if name not in _REGISTRY:
    raise ValueError(f"unknown model name {name!r}; expected one of: {', '.join(sorted(_REGISTRY))}")
  if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
    raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
  return _REGISTRY[name](num_classes=int(num_classes), **kwargs)


def count_params(params: Any) -> int:
  """Number of scalars in a parameter pytree (works on `jax.eval_shape` output too)."""
  return int(sum(np.prod(leaf.shape, dtype=np.int64) for leaf in jax.tree_util.tree_leaves(params)))


def _register_zoo() -> None:
  # Importing the package runs every module's @register.
  import cnnjax.models  # noqa: F401
