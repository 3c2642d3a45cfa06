"""Optimizers and learning-rate schedules from a config."""

import ml_collections
import optax

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "step")


def make_schedule(cfg: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  """The learning rate against the step.

  `step` multiplies the rate by `cfg.decay_factor` at each fraction of training
  in `cfg.decay_at` (e.g. (0.5, 0.75)), as in the ResNet papers.
  """
  lr, warmup = cfg.learning_rate, cfg.get("warmup_steps", 0)
  name = cfg.get("schedule", "constant")
  if name == "constant":
    schedule = optax.constant_schedule(lr)
  elif name in ("cosine", "warmup_cosine"):
    schedule = optax.warmup_cosine_decay_schedule(0.0 if warmup else lr, lr, warmup, max(num_steps, warmup + 1))
    warmup = 0
  elif name == "step":
    boundaries = {int(f * num_steps): cfg.get("decay_factor", 0.1) for f in cfg.get("decay_at", (0.5, 0.75))}
    schedule = optax.piecewise_constant_schedule(lr, boundaries)
  else:
    raise ValueError(f"optimizer.schedule={name!r} is unknown; expected one of {SCHEDULES}")
  if warmup:
    schedule = optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), schedule], [warmup])
  return schedule


def make_optimizer(cfg: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
  """An optax optimizer from `cfg.name`, its schedule, and decoupled or L2 weight decay."""
  schedule = make_schedule(cfg, num_steps)
  name, wd = cfg.name, cfg.get("weight_decay", 0.0)
  momentum = cfg.get("momentum", 0.9)
  if name == "sgd":
    tx = optax.sgd(schedule)
  elif name in ("momentum", "nesterov"):
    tx = optax.sgd(schedule, momentum=momentum, nesterov=name == "nesterov")
  elif name == "rmsprop":
    tx = optax.rmsprop(schedule, decay=cfg.get("decay", 0.9), momentum=cfg.get("rms_momentum", 0.0))
  elif name == "adam":
    tx = optax.adam(schedule)
  elif name == "adamw":
    return optax.adamw(schedule, weight_decay=wd)
  else:
    raise ValueError(f"optimizer.name={name!r} is unknown; expected one of {OPTIMIZERS}")
  # Classic L2 regularisation (added to the gradient) for everything but AdamW.
  return optax.chain(optax.add_decayed_weights(wd), tx) if wd else tx
