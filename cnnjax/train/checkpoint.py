"""Orbax checkpoints: save every N steps, keep the last K and the best, resume, load for reuse."""

import logging as std_logging
import os
import time
from typing import Any, Callable

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


class ShapeMismatchError(ValueError):
  """A checkpoint or weights file whose tree or shapes differ from the model's."""


class CheckpointDamagedError(RuntimeError):
  """No checkpoint of a directory could be read."""


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
    """The newest intact checkpoint in the structure, shardings and dtypes of `state`; `state` itself if none.

    A damaged checkpoint (missing or truncated files) is skipped with a warning
    naming it and the error, and moved to `<directory>-damaged/<step>` (main
    process) so that the run can save that step again; the next older one is tried.

    Raises:
      ValueError: the checkpoint's parameter shapes differ from the model's (names
        the first mismatching path and both shapes).
      CheckpointDamagedError: every checkpoint is damaged (lists each one's error).
    """
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)

    def read(step: int) -> Any:
      check_shapes(_metadata_tree(self._manager, step), state, source=f"checkpoint {self.directory}/{step}")
      return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    step, restored, damaged = _newest_intact(self._manager, self.directory, read)
    self._set_aside(damaged)
    if step is None:
      return state
    logging.info("resuming from %s/%d", self.directory, step)
    return restored

  def _set_aside(self, steps: list[int]) -> None:
    """Moves damaged step directories out of the manager's sight (nothing saved is deleted)."""
    if not steps:
      return
    if jax.process_index() == 0:
      aside = self.directory + "-damaged"
      os.makedirs(aside, exist_ok=True)
      for step in steps:
        target = os.path.join(aside, str(step))
        if os.path.exists(target):
          target += f".{int(time.time())}"
        os.replace(os.path.join(self.directory, str(step)), target)
        logging.warning("moved damaged checkpoint %s/%d to %s", self.directory, step, target)
    self._manager.reload()

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
      raise ShapeMismatchError(f"{source} has no {name}; the model expects one of shape {_shape(leaf)}")
    if _shape(actual_leaves[name]) != _shape(leaf):
      raise ShapeMismatchError(
          f"{source}: {name} has shape {_shape(actual_leaves[name])} but the model expects {_shape(leaf)}")
  extra = [name for name in actual_leaves if name not in expected_leaves]
  if extra:
    raise ShapeMismatchError(f"{source}: {extra[0]} is not in the model")


def _metadata_tree(manager: ocp.CheckpointManager, step: int) -> Any:
  tree = getattr(manager.item_metadata(step), "tree", None)
  if tree is None:  # what orbax returns for a step whose metadata files are missing
    raise FileNotFoundError("its metadata files are missing")
  return tree


def _newest_intact(manager: ocp.CheckpointManager, directory: str,
                   read: Callable[[int], Any]) -> tuple[int | None, Any, list[int]]:
  """`(step, read(step), damaged steps)` of the newest step `read` succeeds on; `(None, None, [])` if none.

  Raises:
    ShapeMismatchError: from `read` (another model: older steps would not fit either).
    CheckpointDamagedError: every step failed, naming each and its error.
  """
  damaged, reasons = [], []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      return step, read(step), damaged
    except ShapeMismatchError:
      raise
    except Exception as e:  # orbax and TensorStore raise many types for missing or truncated files
      reason = f"{directory}/{step}: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}"
      logging.warning("skipping damaged checkpoint %s", reason)
      damaged.append(step)
      reasons.append(reason)
  if damaged:
    raise CheckpointDamagedError(f"every checkpoint under {directory} is damaged:\n  " + "\n  ".join(reasons) +
                                 f"\nMove {directory} away to start the run over, or use another --workdir")
  return None, None, []


def _shape(leaf: Any) -> tuple:
  return tuple(leaf.shape) if hasattr(leaf, "shape") else np.shape(leaf)


def _path_name(path: tuple) -> str:
  """'params/conv1/kernel' for a key path, whether its keys are dict keys, attributes or indices."""
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _read_only_manager(workdir: str) -> tuple[ocp.CheckpointManager, str]:
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"no checkpoint under {directory}; train with --workdir={workdir} first")
  options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
  manager = ocp.CheckpointManager(directory, options=options, item_handlers=ocp.StandardCheckpointHandler())
  return manager, directory


def checkpoint_steps(workdir: str) -> list[int]:
  """The steps of the checkpoints a run wrote in `workdir`, in increasing order."""
  manager, _ = _read_only_manager(workdir)
  try:
    return sorted(manager.all_steps())
  finally:
    manager.close()


def load_checkpoint(workdir: str, step: int | None = None) -> tuple[int, dict]:
  """`(step, variables)` of checkpoint `step` of a run in `workdir` (default: its newest intact one).

  The variables are `params`, `batch_stats` and, when the run kept them, `ema_params`, as NumPy arrays;
  the optimizer state is not returned. Raises FileNotFoundError when there is no such checkpoint.
  """
  manager, directory = _read_only_manager(workdir)

  def read(step: int) -> Any:
    _metadata_tree(manager, step)
    return manager.restore(step, args=ocp.args.StandardRestore())

  try:
    if step is None:
      step, restored, _ = _newest_intact(manager, directory, read)
    elif step in manager.all_steps():
      restored = read(step)
    else:
      raise FileNotFoundError(f"no checkpoint of step {step} under {directory}; steps saved: "
                              f"{sorted(manager.all_steps())}")
  finally:
    manager.close()
  if step is None:
    raise FileNotFoundError(f"no checkpoint under {directory}; train with --workdir={workdir} first")
  variables = {"params": restored["params"], "batch_stats": restored.get("batch_stats") or {}}
  if restored.get("ema_params"):
    variables["ema_params"] = restored["ema_params"]
  return step, jax.tree_util.tree_map(np.asarray, variables)


def load_variables(workdir: str) -> dict:
  """`{'params', 'batch_stats'}` of the newest intact checkpoint a run wrote in `workdir` (as NumPy arrays)."""
  _, variables = load_checkpoint(workdir)
  return {"params": variables["params"], "batch_stats": variables["batch_stats"]}
