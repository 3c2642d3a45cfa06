"""Optimizers and learning-rate schedules from an `OptimizerConfig`."""

import optax

from cnnjax.train.config import OptimizerConfig


def make_schedule(cfg: OptimizerConfig, num_steps: int) -> optax.Schedule:
  """The learning rate against the step.

  `step` multiplies the rate by `cfg.decay_factor` at each fraction of training
  in `cfg.decay_at` (e.g. (0.5, 0.75)), as in the ResNet papers.
  """
  lr, warmup = cfg.learning_rate, cfg.warmup_steps
  if cfg.schedule == "constant":
    schedule = optax.constant_schedule(lr)
  elif cfg.schedule in ("cosine", "warmup_cosine"):
    schedule = optax.warmup_cosine_decay_schedule(0.0 if warmup else lr, lr, warmup, max(num_steps, warmup + 1))
    warmup = 0
  else:  # "step"
    schedule = optax.piecewise_constant_schedule(lr, {int(f * num_steps): cfg.decay_factor for f in cfg.decay_at})
  if warmup:
    schedule = optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), schedule], [warmup])
  return schedule


def make_optimizer(cfg: OptimizerConfig, num_steps: int) -> optax.GradientTransformation:
  """An optax optimizer from `cfg.name`, its schedule, and decoupled or L2 weight decay."""
  schedule = make_schedule(cfg, num_steps)
  if cfg.name == "adamw":
    return optax.adamw(schedule, weight_decay=cfg.weight_decay)
  tx = {
      "sgd": lambda: optax.sgd(schedule),
      "momentum": lambda: optax.sgd(schedule, momentum=cfg.momentum),
      "nesterov": lambda: optax.sgd(schedule, momentum=cfg.momentum, nesterov=True),
      "rmsprop": lambda: optax.rmsprop(schedule, decay=cfg.decay, momentum=cfg.rms_momentum),
      "adam": lambda: optax.adam(schedule),
  }[cfg.name]()
  # Classic L2 regularisation (added to the gradient) for everything but AdamW.
  return optax.chain(optax.add_decayed_weights(cfg.weight_decay), tx) if cfg.weight_decay else tx
