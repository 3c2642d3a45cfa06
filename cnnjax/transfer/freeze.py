"""Transfer learning: pretrained parameters under a new head, and frozen layers."""

import re
from typing import Any, Sequence

import jax
import numpy as np
import optax
from flax import traverse_util


def _flat(tree: Any) -> dict[str, Any]:
  return {"/".join(k): v for k, v in traverse_util.flatten_dict(dict(tree)).items()}


def _unflat(flat: dict[str, Any]) -> dict:
  return traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})


def merge_pretrained(variables: dict, pretrained: dict, *, reinit: Sequence[str] = ()) -> tuple[dict, list[str]]:
  """Copies pretrained values into freshly initialised `variables`.

  Args:
    variables: `model.init` output of the new model (e.g. another `num_classes`).
    pretrained: variables of the trained model (`cnnjax.train.load_variables`).
    reinit: regexes of paths (`'params/fc3/kernel'`) that keep their fresh
      initialisation, typically the classifier head.

  Returns:
    The merged variables and the sorted paths that kept their fresh values.

  Raises:
    ValueError: a path outside `reinit` is missing from `pretrained` or has
      another shape (names the path and both shapes).
  """
  patterns = [re.compile(p) for p in reinit]
  new, old = _flat(variables), _flat(pretrained)
  kept = []
  for path, value in new.items():
    if any(p.search(path) for p in patterns):
      kept.append(path)
      continue
    if path not in old:
      raise ValueError(f"pretrained variables have no {path}; add a `reinit` pattern to initialise it afresh")
    if np.shape(old[path]) != np.shape(value):
      raise ValueError(
          f"{path} has shape {np.shape(old[path])} in the pretrained variables but {np.shape(value)} in the model; "
          "add a `reinit` pattern to initialise it afresh"
      )
    new[path] = jax.numpy.asarray(old[path], dtype=value.dtype)
  return _unflat(new), sorted(kept)


def trainable_labels(params: dict, *, freeze: Sequence[str] = (), freeze_stages: int = 0) -> dict:
  """`'frozen'` or `'trainable'` for every parameter.

  Args:
    params: the parameter tree.
    freeze: regexes of parameter paths to freeze (`'conv'`, `'^conv1/'`).
    freeze_stages: also freeze the first k top-level submodules, in the order
      the model defines them (for LeNet-5, k=2 freezes conv1 and conv2).
  """
  names = list(params)
  if not 0 <= freeze_stages <= len(names):
    raise ValueError(f"freeze_stages={freeze_stages} must be in [0, {len(names)}] (top-level modules: {names})")
  stages = set(names[:freeze_stages])
  patterns = [re.compile(p) for p in freeze]
  flat = _flat(params)
  labels = {
      path: "frozen" if path.split("/")[0] in stages or any(p.search(path) for p in patterns) else "trainable"
      for path in flat
  }
  return _unflat(labels)


def freeze_optimizer(tx: optax.GradientTransformation, labels: dict) -> optax.GradientTransformation:
  """`tx` for the trainable parameters; frozen ones get zero updates (and no optimizer state)."""
  return optax.multi_transform({"trainable": tx, "frozen": optax.set_to_zero()}, labels)
