"""Orbax checkpoints: save every N steps, keep the last K and the best, resume, load for reuse."""

import logging as std_logging
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from orbax.checkpoint import checkpoint_managers as policies


class _OrbaxInfoFilter(std_logging.Filter):
  """Drops orbax's per-save INFO lines (a dozen a checkpoint); its warnings and errors still show."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or f"{os.sep}orbax{os.sep}" not in record.pathname


std_logging.getLogger("absl").addFilter(_OrbaxInfoFilter())


class Checkpointer:
  """Atomic checkpoints of a train state under `directory`.

  A save goes to a temporary directory that is renamed when complete, so a run
  killed mid-save leaves the previous checkpoints intact and is never resumed
  from a partial one.
  """

  def __init__(self, directory: str, *, keep: int = 3, best_metric: str | None = None, best_mode: str = "max"):
    if keep < 1:
      raise ValueError(f"keep_checkpoints={keep} must be at least 1")
    if best_mode not in ("max", "min"):
      raise ValueError(f"best_mode={best_mode!r}; expected 'max' or 'min'")
    preserve = [policies.LatestN(n=keep)]
    if best_metric:
      preserve.append(
          policies.BestN(
              get_metric_fn=lambda m: m[best_metric],
              reverse=best_mode == "min",
              n=1,
              keep_checkpoints_without_metrics=False,
          )
      )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policies.AnyPreservationPolicy(preserve), create=True, cleanup_tmp_directories=True
    )
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory, options=options, item_handlers=ocp.StandardCheckpointHandler()
    )

  @property
  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, metrics: dict[str, float] | None = None) -> None:
    """Saves `state` at `step` (asynchronously; `close` waits)."""
    self._manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=True)

  def restore(self, state: Any) -> Any:
    """The latest checkpoint in the structure, shardings and dtypes of `state`; `state` itself if none.

    Raises:
      ValueError: the checkpoint's parameter shapes differ from the model's (names
        the first mismatching path and both shapes).
    """
    step = self._manager.latest_step()
    if step is None:
      return state
    check_shapes(self._manager.item_metadata(step).tree, state, source=f"checkpoint {self.directory}/{step}")
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
    logging.info("resuming from %s/%d", self.directory, step)
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()


def check_shapes(actual: Any, expected: Any, *, source: str) -> None:
  """Raises `ValueError` on the first path missing from `actual`, extra in it, or of another shape.

  Args:
    actual: what was read (arrays, or orbax array metadata).
    expected: the model's tree (arrays or `jax.ShapeDtypeStruct`s).
    source: what `actual` came from, for the message (a checkpoint, a weights file).
  """
  actual_leaves = {_path_name(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(actual)[0]}
  expected_leaves = {_path_name(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(expected)[0]}
  for name, leaf in expected_leaves.items():
    if name not in actual_leaves:
      raise ValueError(f"{source} has no {name}; the model expects one of shape {_shape(leaf)}")
    if _shape(actual_leaves[name]) != _shape(leaf):
      raise ValueError(f"{source}: {name} has shape {_shape(actual_leaves[name])} but the model expects {_shape(leaf)}")
  extra = [name for name in actual_leaves if name not in expected_leaves]
  if extra:
    raise ValueError(f"{source}: {extra[0]} is not in the model")


def _shape(leaf: Any) -> tuple:
  return tuple(leaf.shape) if hasattr(leaf, "shape") else np.shape(leaf)


def _path_name(path: tuple) -> str:
  """'params/conv1/kernel' for a key path, whether its keys are dict keys, attributes or indices."""
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def load_variables(workdir: str) -> dict:
  """`{'params', 'batch_stats'}` of the latest checkpoint a run wrote in `workdir` (as NumPy arrays)."""
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(read_only=True))
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"no checkpoint under {directory}; train with --workdir={workdir} first")
  restored = manager.restore(step, args=ocp.args.StandardRestore())
  manager.close()
  return {"params": restored["params"], "batch_stats": restored.get("batch_stats", {})}
