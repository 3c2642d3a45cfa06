"""A workdir belongs to one run: an exclusive lock, and a resume refused when the config changes results.

`claim(workdir, config)` takes an `fcntl.flock` on `workdir/run.lock` (released
when the process ends, however it ends: the kernel drops a dead process's
locks), then compares the new config with the stored `config.json` before
anything is written. Fields that only change bookkeeping (`BOOKKEEPING`) may
change on a resume; any other change is refused, listing each field old -> new,
unless `config.allow_config_change` is true (the CLI flag
`--allow_config_change`), in which case the old config is kept beside the new
one as `config.before-<time>.json`.
"""

import contextlib
import datetime
import fcntl
import json
import os
import socket
from typing import Any, Iterator

import ml_collections
from absl import logging

LOCK_FILE = "run.lock"
CONFIG_FILE = "config.json"
OVERRIDE = "allow_config_change"
# Leaf names (at any depth) whose change leaves the steps already taken valid: how long to run, how often to
# log / evaluate / checkpoint, where the datasets live, and how processes find each other (style transfer's
# `checkpoint_dir` names its weights: it changes results).
BOOKKEEPING = frozenset({
    "num_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "best_metric", "best_mode",
    "tensorboard", "data_dir", "num_plot_images", "coordinator_address", "num_processes",
    "process_id", "eval_batch_size", "data_workers", "profile_steps", "export", "memory_limit_gb", OVERRIDE,
})
_SHOWN = 12  # differences listed in a refusal; the rest are counted
_ABSENT = "<absent>"


class WorkdirError(RuntimeError):
  """The workdir cannot be used for this run (locked by another process, or holding another config's run)."""


def check_directory_path(path: str, *, what: str) -> None:
  """Raises `WorkdirError` when `path`, or the nearest of its parents that exists, is not a directory."""
  existing = os.path.abspath(path)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    where = "is a file" if existing == os.path.abspath(path) else f"lies under {existing!r}, which is a file"
    raise WorkdirError(f"{what}={path!r} {where}, not a directory; give a directory path")


def ensure_directory(path: str, *, what: str) -> str:
  """Creates directory `path` (and parents), with a clear error naming `what` when it or a parent is a file."""
  check_directory_path(path, what=what)
  os.makedirs(path, exist_ok=True)
  return path


@contextlib.contextmanager
def claim(workdir: str, config: ml_collections.ConfigDict, *, write: bool = True) -> Iterator[None]:
  """Holds `workdir` for this run: locks it, checks `config` against its stored one, writes `config.json`.

  Args:
    workdir: the run's directory (created if missing).
    config: the new run's config.
    write: lock and write (the main process); False only compares (the other processes of a multi-host run).

  Raises:
    WorkdirError: another process holds the lock (names its pid, host and start time), or the workdir
      holds steps of a config that differs in a field that changes results (lists each field).
  """
  if not write:
    check_config(workdir, config)
    yield
    return
  ensure_directory(workdir, what="workdir")
  with _lock(workdir):
    _write_config(workdir, config, keep_old=check_config(workdir, config))
    yield


def check_free(workdir: str) -> None:
  """Raises `WorkdirError` naming the holder when another process holds `workdir` now (creates nothing)."""
  path = os.path.join(workdir, LOCK_FILE)
  if not os.path.exists(path):
    return
  fd = os.open(path, os.O_RDONLY)
  try:
    _take(fd, workdir, path)
  finally:
    os.close(fd)


def _take(fd: int, workdir: str, path: str) -> None:
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
    raise WorkdirError(f"workdir {workdir!r} is in use by {holder} (lock {path}); wait for that run to end, or "
                       "choose another --workdir") from None


@contextlib.contextmanager
def _lock(workdir: str) -> Iterator[None]:
  path = os.path.join(workdir, LOCK_FILE)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    _take(fd, workdir, path)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}, started {started}\n".encode(), 0)
    yield
  finally:
    os.close(fd)  # closing the only descriptor releases the flock


def check_config(workdir: str, config: ml_collections.ConfigDict) -> bool:
  """Raises `WorkdirError` when `workdir` holds steps of a config that differs from `config` in a result field.

  Returns:
    Whether a change of result fields was let through by `config.allow_config_change`.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path) or not _has_progress(workdir):
    return False
  old = _flatten(_read_config(path))
  new = _flatten(json.loads(config.to_json_best_effort()))
  changed = _diff(old, new)
  result_fields = [field for field in changed if field.rsplit(".", 1)[-1] not in BOOKKEEPING]
  lines = [f"  {field}: {_show(old, field)} -> {_show(new, field)}" for field in changed]
  if not result_fields:
    if changed:
      logging.info("resuming %s with bookkeeping changes:\n%s", workdir, "\n".join(lines))
    return False
  if config.get(OVERRIDE, False):
    logging.warning("resuming %s with a changed config (%s=True):\n%s", workdir, OVERRIDE, "\n".join(lines))
    return True
  listed = [line for field, line in zip(changed, lines) if field in result_fields]
  more = f"\n  ... and {len(listed) - _SHOWN} more" if len(listed) > _SHOWN else ""
  raise WorkdirError(
      f"workdir {workdir!r} holds a run of another config ({path}); resuming would mix two runs. "
      f"Fields that change results differ (stored -> new):\n" + "\n".join(listed[:_SHOWN]) + more +
      f"\nUse a new --workdir, or pass --allow_config_change (config.{OVERRIDE}=True) to resume anyway; "
      f"only {', '.join(sorted(BOOKKEEPING - {OVERRIDE}))} may change freely.")


def _diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
  """Sorted flat field names whose values differ, or that only one of the two configs has."""
  return sorted(k for k in old.keys() | new.keys() if old.get(k, _ABSENT) != new.get(k, _ABSENT))


def _show(flat: dict[str, Any], field: str) -> str:
  return _ABSENT if field not in flat else json.dumps(flat[field])


def _has_progress(workdir: str) -> bool:
  """Whether the workdir holds steps taken: a checkpoint or a logged metric."""
  checkpoints = os.path.join(workdir, "checkpoints")
  metrics = os.path.join(workdir, "metrics.jsonl")
  return (os.path.isdir(checkpoints) and bool(os.listdir(checkpoints))) or (
      os.path.exists(metrics) and os.path.getsize(metrics) > 0)


def _read_config(path: str) -> dict:
  try:
    with open(path) as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise WorkdirError(f"{path} is not valid JSON ({e}); it describes the run in this workdir, so it is not "
                       "overwritten: restore it, delete it to resume with the new config, or use a new "
                       "--workdir") from None


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  """{'optimizer.name': 'adam', ...}: one entry per leaf, dotted as on the command line."""
  if not isinstance(tree, dict) or not tree:
    return {prefix: tree}
  flat = {}
  for key, value in tree.items():
    flat.update(_flatten(value, f"{prefix}.{key}" if prefix else key))
  return flat


def _write_config(workdir: str, config: ml_collections.ConfigDict, *, keep_old: bool) -> None:
  """Writes `config.json` atomically; with `keep_old`, the replaced one stays as `config.before-<time>.json`."""
  path = os.path.join(workdir, CONFIG_FILE)
  if keep_old:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    os.replace(path, os.path.join(workdir, f"config.before-{stamp}.json"))
  text = config.to_json_best_effort(indent=2, sort_keys=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)
