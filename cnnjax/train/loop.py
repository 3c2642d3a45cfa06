"""`fit`: the one training loop every experiment uses."""

import math
import os
import time
from typing import Callable, Iterator

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
from cnnjax.train.metrics import MetricWriter, plot_curves
from cnnjax.train.optim import make_optimizer
from cnnjax.train.state import TrainState, create_train_state
from cnnjax.train.step import AugmentFn, LossFn, NonFiniteLossError, make_train_step
from cnnjax.train.validate import check_train_config


def fit(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    model: nn.Module,
    loss_fn: LossFn,
    batches: Callable[[int], Iterator[dict[str, np.ndarray]]],
    eval_fn: Callable[[TrainState], dict[str, float]] | None = None,
    augment_fn: AugmentFn | None = None,
    init_variables: dict | None = None,
    tx: optax.GradientTransformation | None = None,
) -> TrainState:
  """Trains `model` for `config.num_steps` steps, resuming from `workdir` if it holds a checkpoint.

  Args:
    config: reads `seed`, `num_steps`, `batch_size`, `optimizer`, `log_every`,
      `eval_every`, `checkpoint_every`, `keep_checkpoints`, and optionally
      `best_metric`/`best_mode` (keep the best checkpoint by an eval metric) and
      `skip_nonfinite` (skip updates with a non-finite loss instead of stopping)
      and `tensorboard` (write event files; default True).
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

  Returns:
    The final state, replicated over the devices.

  Raises:
    WorkdirError: another process holds `workdir`, or it holds steps of a config
      that differs in a field that changes results (see `cnnjax.train.workdir`).
    NonFiniteLossError: the loss was not finite (names the step); nothing after
      the last good checkpoint is saved.
  """
  check_train_config(config)
  is_main = jax.process_index() == 0
  with workdir_lib.claim(workdir, config, write=is_main):
    mesh = parallel.data_mesh()
    tx = tx or make_optimizer(config.optimizer, config.num_steps)
    sample = next(iter(batches(0)))["image"]
    state = create_train_state(model, tx, jax.random.PRNGKey(config.seed), sample, init_variables)
    state = parallel.replicate(state, mesh)

    checkpointer = Checkpointer(
        os.path.join(workdir, "checkpoints"),
        keep=config.get("keep_checkpoints", 3),
        best_metric=config.get("best_metric"),
        best_mode=config.get("best_mode", "max"),
    )
    state = checkpointer.restore(state)
    start = int(state.step)
    writer = MetricWriter(workdir, resume_step=start, tensorboard=config.get("tensorboard", True), enabled=is_main)
    skip_nonfinite = config.get("skip_nonfinite", False)
    train_step = parallel.compile_train_step(
        make_train_step(loss_fn, augment_fn=augment_fn, skip_nonfinite=skip_nonfinite), mesh
    )
    try:
      state = _train(config, state, train_step, prefetch_to_mesh(batches(start), mesh), eval_fn, checkpointer, writer)
    finally:
      checkpointer.close()
      writer.close()
    if is_main:
      plot_curves(workdir)
    return state


def _train(config, state, train_step, batches, eval_fn, checkpointer, writer) -> TrainState:
  start, num_steps = int(state.step), config.num_steps
  log_every, eval_every = config.get("log_every", 50), config.get("eval_every", 0)
  checkpoint_every = config.get("checkpoint_every", 0)
  pending: list[dict] = []
  clock, images, train_seconds, train_images = time.perf_counter(), 0, 0.0, 0
  bar = tqdm(total=num_steps, initial=start, desc="train", unit="step", disable=jax.process_index() != 0)
  for step in range(start + 1, num_steps + 1):
    state, metrics = train_step(state, next(batches))
    pending.append(metrics)
    images += config.batch_size
    checkpoint_now = step == num_steps or (checkpoint_every and step % checkpoint_every == 0)
    if step % log_every == 0 or checkpoint_now:
      # The only host sync: metrics of the last steps, fetched together.
      rows = jax.device_get(pending)
      pending = []
      _check_finite(rows, first_step=step - len(rows) + 1, skipping=config.get("skip_nonfinite", False))
      seconds = time.perf_counter() - clock
      train_seconds, train_images = train_seconds + seconds, train_images + images
      summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
      summary["images_per_s"] = images / seconds
      writer.write(step, {f"train_{k}" if k != "images_per_s" else k: v for k, v in summary.items()})
      bar.set_postfix({k: f"{v:.4g}" for k, v in summary.items()}, refresh=False)
      clock, images = time.perf_counter(), 0
    bar.update(1)
    eval_metrics = None
    if eval_fn is not None and (step == num_steps or (eval_every and step % eval_every == 0)):
      try:
        eval_metrics = {k: float(v) for k, v in eval_fn(state).items()}
      except Exception:
        if checkpoint_now:  # the training is good even if its evaluation failed: keep it
          checkpointer.save(step, state)
        raise
      writer.write(step, eval_metrics)
      logging.info("step %d: %s", step, eval_metrics)
    if checkpoint_now:
      checkpointer.save(step, state, metrics=eval_metrics)
  bar.close()
  if train_seconds:
    writer.write(num_steps, {"train_time_s": train_seconds, "train_images_per_s": train_images / train_seconds})
  return state


def _check_finite(rows: list[dict], *, first_step: int, skipping: bool) -> None:
  for offset, row in enumerate(rows):
    loss = float(row["loss"])
    if not math.isfinite(loss) and not skipping:
      raise NonFiniteLossError(
          f"the loss is {loss} at step {first_step + offset}; stopping. The last good checkpoint is kept; "
          "lower the learning rate, or set config.skip_nonfinite=True to skip such steps"
      )
