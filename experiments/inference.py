"""A finished run, restored from its workdir: its experiment, config and checkpoint, and user images to feed it.

Shared by `experiments.evaluate` and `experiments.predict`. Nothing here trains
or needs an optimizer: the checkpoint's parameters (and BatchNorm statistics,
and moving average where the run kept one) are read without its optimizer state.
"""

import contextlib
import dataclasses
import json
import os
import sys
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from PIL import Image, UnidentifiedImageError

from cnnjax.train import checkpoint as checkpoint_lib
from cnnjax.train import metrics as metrics_lib
from cnnjax.train import parallel
from cnnjax.train import workdir as workdir_lib
from cnnjax.train.state import TrainState
from experiments import cli

CHECKPOINTS = ("latest", "best")


class RunError(ValueError):
  """The workdir, checkpoint, split or image asked for cannot be used (the message says which and why)."""


@dataclasses.dataclass
class Run:
  """A run's workdir, experiment name ('classification', 'detection', ...) and config, as it trained."""
  workdir: str
  experiment: str
  config: ml_collections.ConfigDict


def open_run(workdir: str) -> Run:
  """Reads `workdir/config.json` and tells which experiment wrote it.

  Raises:
    RunError: no such workdir, no config.json in it, a config of no known experiment,
      or a workdir of several variants (names them: each is a run of its own).
  """
  if not os.path.isdir(workdir):
    raise RunError(f"--workdir={workdir}: no such directory; give the workdir of a run "
                   "(python -m experiments.<name> --workdir=...)")
  path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  if not os.path.isfile(path):
    raise RunError(f"--workdir={workdir} holds no {workdir_lib.CONFIG_FILE}: it is not the workdir of a run "
                   "(every experiment writes its config there when it starts)")
  try:
    with open(path) as f:
      config = ml_collections.ConfigDict(_tuples(json.load(f)))
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise RunError(f"{path} is not valid JSON ({e})") from None
  if config.get("variant_names"):
    names = ", ".join(os.path.join(workdir, n) for n in config.variant_names)
    raise RunError(f"--workdir={workdir} holds a run of several variants; give one of them: {names}")
  if config.get("claim"):  # a claims runner's workdir (experiments/claims/): one run per subdirectory
    names = ", ".join(sorted(os.path.join(workdir, d) for d in os.listdir(workdir)
                             if os.path.isfile(os.path.join(workdir, d, workdir_lib.CONFIG_FILE))))
    raise RunError(f"--workdir={workdir} holds the runs of a claims runner; give one of them: {names}")
  experiment = cli.experiment_of_config(config)
  if experiment is None:
    raise RunError(f"{path} is the config of no experiment this command knows "
                   f"({', '.join(n for n in cli.DEFAULT_CONFIGS if n != 'benchmark')})")
  return Run(os.path.abspath(workdir), experiment, config)


def _tuples(tree: Any) -> Any:
  """JSON lists back to the tuples configs hold (a module field must be hashable)."""
  if isinstance(tree, dict):
    return {k: _tuples(v) for k, v in tree.items()}
  if isinstance(tree, list):
    return tuple(_tuples(v) for v in tree)
  return tree


def select_step(run: Run, checkpoint: str = "latest") -> int:
  """The step of checkpoint `checkpoint`: 'latest', 'best' (by the run's `best_metric`) or a step number.

  Raises:
    RunError: no checkpoint in the workdir, no best one (names why), or no checkpoint of that step.
  """
  try:
    saved = checkpoint_lib.checkpoint_steps(run.workdir)
  except FileNotFoundError as e:
    raise RunError(str(e)) from None
  if not saved:
    raise RunError(f"no checkpoint under {run.workdir}/checkpoints; train with --workdir={run.workdir} first")
  if checkpoint == "latest":
    return max(saved)
  if checkpoint == "best":
    metric, mode = run.config.get("best_metric") or "", run.config.get("best_mode", "max")
    if not metric:
      raise RunError(f"--checkpoint=best: the run in {run.workdir} chose no best checkpoint (its config has no "
                     f"best_metric); use --checkpoint=latest or a step of {sorted(saved)}")
    # The checkpointer keeps its best one by the evaluation of the step it saves, which orbax does not
    # write into the checkpoint: the run's metrics.jsonl holds the same numbers.
    logged = {row["step"]: row[metric] for row in metrics_lib.read_metrics(run.workdir) if metric in row}
    scored = {step: logged[step] for step in saved if step in logged}
    if not scored:
      raise RunError(f"--checkpoint=best: no checkpoint under {run.workdir}/checkpoints has a logged "
                     f"{metric!r} (metrics.jsonl); steps saved: {sorted(saved)}")
    pick = max if mode == "max" else min
    return pick(scored, key=lambda step: (scored[step], step))
  try:
    step = int(checkpoint)
  except ValueError:
    raise RunError(f"--checkpoint={checkpoint!r}: expected 'latest', 'best' or a step number") from None
  if step not in saved:
    raise RunError(f"--checkpoint={checkpoint}: no checkpoint of that step under {run.workdir}/checkpoints; "
                   f"steps saved: {sorted(saved)}")
  return step


def restore(run: Run, checkpoint: str = "latest") -> tuple[int, dict]:
  """`(step, variables)` of the chosen checkpoint (see `select_step`), as NumPy arrays."""
  step = select_step(run, checkpoint)
  return checkpoint_lib.load_checkpoint(run.workdir, step)


def eval_state(model, variables: dict, step: int, *, ema_decay: float = 0.0) -> TrainState:
  """A `TrainState` the experiments' evaluators take, replicated over the devices; it holds no optimizer."""
  ema = variables.get("ema_params") or {}
  state = TrainState(step=jnp.asarray(step, jnp.int32), params=variables["params"],
                     batch_stats=variables.get("batch_stats") or {}, opt_state=(), rng=jax.random.PRNGKey(0),
                     apply_fn=model.apply, tx=optax.identity(), ema_params=ema,
                     ema_decay=float(ema_decay) if ema else 0.0)
  return parallel.replicate(state, parallel.data_mesh())


def load_image(path: str, channels: int) -> np.ndarray:
  """The image file `path` as uint8 `[H, W, channels]` (1: grey, 3: RGB; alpha and palettes converted).

  Raises:
    RunError: the file does not exist or is not an image Pillow can read (names the path).
  """
  if not os.path.isfile(path):
    raise RunError(f"{path}: no such image file")
  try:
    with Image.open(path) as image:
      converted = image.convert("L" if channels == 1 else "RGB")
  except (UnidentifiedImageError, OSError) as e:
    raise RunError(f"{path}: not an image file Pillow can read ({type(e).__name__}: {e})") from None
  return np.asarray(converted, np.uint8).reshape(converted.height, converted.width, channels)


def define_run_flags() -> None:
  """The flags evaluate and predict share: the run's workdir and which of its checkpoints."""
  from absl import flags

  flags.DEFINE_string("workdir", None, "The workdir of a run (holds config.json and checkpoints/).", required=True)
  flags.DEFINE_string("checkpoint", "latest", "'latest', 'best' (by the run's best_metric) or a step number.")


@contextlib.contextmanager
def fatal_on_error() -> Iterator[None]:
  """Ends the process with `FATAL <message>` on stderr and status 1 on a RunError (no traceback, no usage)."""
  try:
    yield
  except RunError as e:
    sys.stderr.write(f"FATAL {e}\n")
    sys.exit(1)


def json_text(payload: dict) -> str:
  """`payload` as indented JSON (NumPy arrays and scalars as lists and numbers)."""
  return json.dumps(payload, indent=2, default=_plain)


def write_json(path: str, payload: dict) -> str:
  """Writes `payload` as indented JSON to `path` (atomically) and returns the path."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(json_text(payload) + "\n")
  os.replace(tmp, path)
  return path


def _plain(value: Any) -> Any:
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, np.generic):
    return value.item()
  raise TypeError(f"{type(value).__name__} is not JSON serializable")
