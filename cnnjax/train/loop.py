"""`fit`: the one training loop every experiment uses."""

import dataclasses
import math
import os
import time
from typing import Any, Callable, Iterator

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import optax
from absl import logging
from tqdm.auto import tqdm

from cnnjax.data.pipeline import prefetch_to_mesh
from cnnjax.train import parallel
from cnnjax.train import workdir as workdir_lib
from cnnjax.train.checkpoint import Checkpointer
from cnnjax.train.config import TrainConfig
from cnnjax.train.metrics import MetricWriter, plot_curves
from cnnjax.train.optim import make_optimizer, make_schedule
from cnnjax.train.profile import Profiler
from cnnjax.train.state import TrainState, create_train_state
from cnnjax.train.step import AugmentFn, LossFn, NonFiniteLossError, make_train_step


@dataclasses.dataclass
class FitResult:
  """What `fit` measured: the final state, the last evaluation and training summary, and timings."""
  state: TrainState
  eval_metrics: dict[str, float]  # the last evaluation (at the final step); empty without `eval_fn`
  train_metrics: dict[str, float]  # means over the last logged window, `train_`-prefixed
  train_time_s: float  # training time of this process's steps (evaluation and compilation included)
  train_images_per_s: float

  def summary(self) -> dict[str, Any]:
    """The figures a run reports: last evaluation and training metrics, time and throughput."""
    return {**self.train_metrics, **self.eval_metrics, "train_time_s": self.train_time_s,
            "train_images_per_s": self.train_images_per_s}


def fit(
    config: TrainConfig | ml_collections.ConfigDict,
    workdir: str,
    *,
    model: nn.Module,
    loss_fn: LossFn,
    batches: Callable[[int], Iterator[dict[str, np.ndarray]]],
    eval_fn: Callable[[TrainState], dict[str, float]] | None = None,
    augment_fn: AugmentFn | None = None,
    init_variables: dict | None = None,
    tx: optax.GradientTransformation | None = None,
    experiment_config: ml_collections.ConfigDict | None = None,
) -> FitResult:
  """Trains `model` for `config.num_steps` steps, resuming from `workdir` if it holds a checkpoint.

  Args:
    config: a `TrainConfig`, or an experiment's ConfigDict whose training fields
      make one (`TrainConfig.from_config`); checked before any data is read.
    workdir: where `metrics.jsonl`, `config.json`, `checkpoints/`, `tensorboard/`
      and `plots/` go.
    model: a Flax module taking `batch['image']`.
    loss_fn: `(outputs, batch) -> (loss, metrics)`, traced once into the train step.
    batches: `start_step -> iterator` of host batches (this process's share of
      the global batch); the batch of a step must not depend on where the run started.
      `batch['image']` is the model's input; it may be a pytree (e.g. pixels and
      regions) when `init_variables` is given.
    eval_fn: `state -> metrics`, called every `eval_every` steps and at the end.
    augment_fn: `(key, batch) -> batch` on device, inside the step.
    init_variables: starting variables (e.g. pretrained) instead of a random init.
    tx: the optimizer, when the config's is not enough (e.g. frozen layers).
    experiment_config: the whole config of the experiment, written to
      `workdir/config.json` (default: `config` itself).

  Returns:
    A `FitResult`: the final state (replicated over the devices), the last
    evaluation, the last training metrics and the timings. A run resumed at its
    last step trains nothing and evaluates once.

  Raises:
    WorkdirError: another process holds `workdir`, or it holds steps of a config
      that differs in a field that changes results (see `cnnjax.train.workdir`).
    NonFiniteLossError: the loss was not finite (names the step); nothing after
      the last good checkpoint is saved.
  """
  if experiment_config is None and not isinstance(config, TrainConfig):
    experiment_config = config
  config = config if isinstance(config, TrainConfig) else TrainConfig.from_config(config)
  parallel.check_batch_size(config.batch_size, config.grad_accum_steps)
  is_main = jax.process_index() == 0
  with workdir_lib.claim(workdir, experiment_config or ml_collections.ConfigDict(config.to_dict()), write=is_main):
    mesh = parallel.data_mesh()
    tx = tx or make_optimizer(config.optimizer, config.num_steps)
    sample = next(iter(batches(0)))["image"]
    state = create_train_state(model, tx, jax.random.PRNGKey(config.seed), sample, init_variables,
                               ema_decay=config.ema_decay)
    state = parallel.replicate(state, mesh)

    checkpointer = Checkpointer(
        os.path.join(workdir, "checkpoints"),
        keep=config.keep_checkpoints,
        best_metric=config.best_metric,
        best_mode=config.best_mode,
    )
    state = checkpointer.restore(state)
    start = int(state.step)
    writer = MetricWriter(workdir, resume_step=start, tensorboard=config.tensorboard, enabled=is_main)
    train_step = parallel.compile_train_step(
        make_train_step(loss_fn, augment_fn=augment_fn, skip_nonfinite=config.skip_nonfinite,
                        grad_accum_steps=config.grad_accum_steps,
                        learning_rate_fn=make_schedule(config.optimizer, config.num_steps)),
        mesh,
    )
    if eval_fn is not None and state.ema_decay:
      eval_fn = with_ema(eval_fn)
    profiler = Profiler(os.path.join(workdir, "profile"), config.profile_steps, enabled=is_main)
    try:
      result = _train(config, state, train_step, prefetch_to_mesh(batches(start), mesh), eval_fn, checkpointer,
                      writer, profiler)
    finally:
      profiler.close()
      checkpointer.close()
      writer.close()
    if eval_fn is not None and not result.eval_metrics:  # resumed at the last step: nothing was trained
      result.eval_metrics = {k: float(v) for k, v in eval_fn(result.state).items()}
    if is_main:
      plot_curves(workdir)
    return result


def with_ema(eval_fn: Callable[[TrainState], dict[str, float]]) -> Callable[[TrainState], dict[str, float]]:
  """`eval_fn` of the raw parameters and, `ema_`-prefixed, of their moving average."""

  def evaluate(state: TrainState) -> dict[str, float]:
    return {**eval_fn(state), **{f"ema_{k}": v for k, v in eval_fn(state.with_ema_params()).items()}}

  return evaluate


def _train(config: TrainConfig, state, train_step, batches, eval_fn, checkpointer, writer, profiler) -> FitResult:
  start, num_steps = int(state.step), config.num_steps
  log_every, eval_every, checkpoint_every = config.log_every, config.eval_every, config.checkpoint_every
  train_metrics: dict[str, float] = {}
  eval_metrics: dict[str, float] = {}
  pending: list[dict] = []
  clock, images, train_seconds, train_images = time.perf_counter(), 0, 0.0, 0
  bar = tqdm(total=num_steps, initial=start, desc="train", unit="step", disable=jax.process_index() != 0)
  for step in range(start + 1, num_steps + 1):
    profiler.before(step)
    state, metrics = train_step(state, next(batches))
    profiler.after(step, state)
    pending.append(metrics)
    images += config.batch_size
    checkpoint_now = step == num_steps or (checkpoint_every and step % checkpoint_every == 0)
    if step % log_every == 0 or checkpoint_now:
      # The only host sync: metrics of the last steps, fetched together.
      rows = jax.device_get(pending)
      pending = []
      _check_finite(rows, first_step=step - len(rows) + 1, skipping=config.skip_nonfinite)
      seconds = time.perf_counter() - clock
      train_seconds, train_images = train_seconds + seconds, train_images + images
      summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
      summary["images_per_s"] = images / seconds
      train_metrics = {f"train_{k}" if k != "images_per_s" else k: v for k, v in summary.items()}
      writer.write(step, train_metrics)
      bar.set_postfix({k: f"{v:.4g}" for k, v in summary.items()}, refresh=False)
      clock, images = time.perf_counter(), 0
    bar.update(1)
    evaluated = None
    if eval_fn is not None and (step == num_steps or (eval_every and step % eval_every == 0)):
      try:
        evaluated = eval_metrics = {k: float(v) for k, v in eval_fn(state).items()}
      except Exception:
        if checkpoint_now:  # the training is good even if its evaluation failed: keep it
          checkpointer.save(step, state)
        raise
      writer.write(step, evaluated)
      logging.info("step %d: %s", step, evaluated)
    if checkpoint_now:
      checkpointer.save(step, state, metrics=evaluated)
  bar.close()
  images_per_s = train_images / train_seconds if train_seconds else 0.0
  if train_seconds:
    writer.write(num_steps, {"train_time_s": train_seconds, "train_images_per_s": images_per_s})
  train_metrics.pop("images_per_s", None)
  return FitResult(state, eval_metrics, train_metrics, train_seconds, images_per_s)


def _check_finite(rows: list[dict], *, first_step: int, skipping: bool) -> None:
  for offset, row in enumerate(rows):
    loss = float(row["loss"])
    if not math.isfinite(loss) and not skipping:
      raise NonFiniteLossError(
          f"the loss is {loss} at step {first_step + offset}; stopping. The last good checkpoint is kept; "
          "lower the learning rate, or set config.skip_nonfinite=True to skip such steps"
      )
