"""Where metrics go: `metrics.jsonl`, TensorBoard events, curve plots and `results.json`."""

import json
import math
import os
from typing import Any, Iterable

import ml_collections
import numpy as np
from absl import logging


class MetricWriter:
  """Appends `{'step': s, **metrics}` lines to `workdir/metrics.jsonl` and TensorBoard events.

  On resume, rows logged after the checkpoint being resumed are dropped, so the
  file reads as one uninterrupted run.
  """

  def __init__(self, workdir: str, *, resume_step: int = 0, tensorboard: bool = True, enabled: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = enabled
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      kept = [row for row in read_metrics(workdir) if row["step"] <= resume_step]
      tmp = self.path + ".tmp"
      with open(tmp, "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in kept)
      os.replace(tmp, self.path)
    self._tb = None
    if enabled and tensorboard:
      from tensorboardX import SummaryWriter  # Imported here: only the writing process needs it.

      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"), purge_step=resume_step + 1)

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    if not self.enabled:
      return
    row = {"step": int(step), **{k: _to_python(v) for k, v in metrics.items()}}
    # One write() of the whole line to an O_APPEND file: a kill leaves at most a partial last line,
    # which `read_metrics` drops.
    fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
      os.write(fd, (json.dumps(row) + "\n").encode())
    finally:
      os.close(fd)
    if self._tb is not None:
      for key, value in row.items():
        if key != "step" and isinstance(value, (int, float)):
          self._tb.add_scalar(key, value, step)

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _to_python(value: Any) -> Any:
  value = np.asarray(value).tolist() if hasattr(value, "shape") else value
  return None if isinstance(value, float) and not math.isfinite(value) else value


def read_metrics(workdir: str) -> list[dict]:
  """Rows of `workdir/metrics.jsonl` (empty when there is none).

  A partial last line (what a kill during a write leaves) is dropped with a
  warning; a damaged line before it raises `ValueError` naming the file and line.
  """
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path, "rb") as f:
    lines = f.read().split(b"\n")
  rows = []
  for number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    try:
      row = json.loads(line)
      if not isinstance(row, dict) or not isinstance(row.get("step"), int):
        raise ValueError("not an object with an integer 'step'")
    except ValueError as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
      if number == len(lines):  # no newline after it: a write cut short
        logging.warning("%s: dropping its partial last line %d (%s)", path, number, e)
        continue
      raise ValueError(f"{path}, line {number}, is damaged ({e}); delete that line (or the file, losing the "
                       "history) to resume") from None
    rows.append(row)
  return rows


RUN_TOTALS = ("train_time_s", "train_images_per_s")  # one value per run: the results table's, not a curve's
_SPLITS = ("ema_", "train_", "test_", "eval_", "val_", "validation_")  # prefixes naming where a metric was taken
_FIRST = ("loss", "accuracy", "error")


def metric_panels(keys: Iterable[str]) -> dict[str, list[str]]:
  """Groups metric names by what they measure: `{'loss': ['test_loss', 'train_loss'], ...}`.

  A name stripped of its split prefixes (`train_`, `test_`, `ema_`, ..) names its
  panel, so the training and evaluation values of a metric share one; run
  totals (`RUN_TOTALS`) are left out. Loss, accuracy and error come first.
  """
  panels: dict[str, list[str]] = {}
  for key in sorted(set(keys) - set(RUN_TOTALS)):
    panels.setdefault(_measure(key), []).append(key)
  order = sorted(panels, key=lambda name: (_FIRST.index(name) if name in _FIRST else len(_FIRST), name))
  return {name: panels[name] for name in order}


def _measure(key: str) -> str:
  """`key` without its split prefixes: 'ema_test_accuracy' -> 'accuracy'."""
  prefix = next((p for p in _SPLITS if key.startswith(p) and len(key) > len(p)), None)
  return key if prefix is None else _measure(key[len(prefix):])


def plot_curves(workdir: str, keys: Iterable[str] | None = None, filename: str = "curves.png",
                columns: int = 3) -> str:
  """Metrics against the step in a grid of panels (`metric_panels`), saved under `workdir/plots/`."""
  # A bare Figure needs no pyplot backend, so notebooks keep their inline plots.
  from matplotlib.figure import Figure

  rows = read_metrics(workdir)
  keys = keys or {k for row in rows for k, v in row.items() if k != "step" and isinstance(v, (int, float))}
  panels = metric_panels(keys)
  columns = max(1, min(columns, len(panels)))
  grid = max(1, math.ceil(len(panels) / columns))
  fig = Figure(figsize=(4.5 * columns, 3.2 * grid))
  axes = fig.subplots(grid, columns, squeeze=False).ravel()
  for ax, (name, members) in zip(axes, panels.items()):
    for key in members:
      points = [(row["step"], row[key]) for row in rows if isinstance(row.get(key), (int, float))]
      if points:
        ax.plot(*zip(*points), marker="." if len(points) < 30 else None, label=key)
    ax.set(title=name, xlabel="step")
    ax.grid(alpha=0.3)
    if len(members) > 1:
      ax.legend(fontsize="small")
  for ax in axes[len(panels):]:
    ax.set_visible(False)
  fig.tight_layout()
  path = os.path.join(workdir, "plots", filename)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig.savefig(path, dpi=100)
  return path


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes the run's full config to `workdir/config.json`, so a result can be reproduced."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))


def write_results(workdir: str, results: dict[str, Any]) -> str:
  """Writes the final metrics to `workdir/results.json`."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "results.json")
  with open(path, "w") as f:
    json.dump({k: _to_python(v) for k, v in results.items()}, f, indent=2, sort_keys=True)
  return path
