"""The typed training config of `fit`: built with keyword arguments or from an experiment's ConfigDict,
checked once, on construction, before any data is read or anything compiles."""

import dataclasses
from typing import Any, Mapping

import ml_collections

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "step")
DTYPES = ("float32", "bfloat16", "float16")


def fail(field: str, value: Any, expected: str) -> None:
  """Raises the one form of config error: the field, its value and what was expected."""
  raise ValueError(f"config.{field}={value!r}: expected {expected}")


def check_int(field: str, value: Any, minimum: int) -> None:
  """An integer (not a bool) >= `minimum`."""
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    fail(field, value, f"an integer >= {minimum}")


def check_number(field: str, value: Any, low: float, high: float, *, closed_high: bool = False) -> None:
  """A number in [low, high), or [low, high] with `closed_high`."""
  ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value
  ok = ok and (value <= high if closed_high else value < high)
  if not ok:
    fail(field, value, f"a number in [{low}, {high}{']' if closed_high else ')'}")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """An optax optimizer and its learning-rate schedule (see `cnnjax.train.optim`).

  `step` multiplies the rate by `decay_factor` at each fraction of training in
  `decay_at`; `warmup_steps` ramps the rate linearly from 0 first.
  """
  name: str = "adam"
  learning_rate: float = 1e-3
  schedule: str = "constant"
  warmup_steps: int = 0
  weight_decay: float = 0.0  # decoupled for adamw, L2 on the gradient otherwise
  momentum: float = 0.9  # momentum, nesterov
  decay: float = 0.9  # rmsprop's average of squared gradients
  rms_momentum: float = 0.0
  decay_factor: float = 0.1  # step schedule
  decay_at: tuple[float, ...] = (0.5, 0.75)

  def __post_init__(self):
    object.__setattr__(self, "decay_at", tuple(self.decay_at))
    if self.name not in OPTIMIZERS:
      fail("optimizer.name", self.name, f"one of {OPTIMIZERS}")
    if self.schedule not in SCHEDULES:
      fail("optimizer.schedule", self.schedule, f"one of {SCHEDULES}")
    if isinstance(self.learning_rate, bool) or not (isinstance(self.learning_rate, (int, float))
                                                    and self.learning_rate > 0):
      fail("optimizer.learning_rate", self.learning_rate, "a positive number")
    check_int("optimizer.warmup_steps", self.warmup_steps, 0)
    check_number("optimizer.weight_decay", self.weight_decay, 0.0, float("inf"))
    for field in ("momentum", "decay", "rms_momentum"):
      check_number(f"optimizer.{field}", getattr(self, field), 0.0, 1.0)
    check_number("optimizer.decay_factor", self.decay_factor, 0.0, 1.0, closed_high=True)
    if any(not 0 < f < 1 for f in self.decay_at):
      fail("optimizer.decay_at", self.decay_at, "fractions of training in (0, 1)")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """What `fit` needs: the run's length and batch, the optimizer, logging, evaluation and checkpoints."""
  num_steps: int
  batch_size: int  # global: split over every device of every process
  optimizer: OptimizerConfig = OptimizerConfig()
  seed: int = 0
  log_every: int = 50
  eval_every: int = 0  # 0: evaluate only at the end
  checkpoint_every: int = 0  # 0: checkpoint only at the end
  keep_checkpoints: int = 3
  best_metric: str | None = None  # also keep the checkpoint best by this evaluation metric
  best_mode: str = "max"
  skip_nonfinite: bool = False  # skip updates with a non-finite loss instead of stopping
  tensorboard: bool = True
  dtype: str = "float32"  # compute dtype of the model (parameters stay float32)
  ema_decay: float = 0.0  # > 0: keep, checkpoint and evaluate a moving average of the parameters
  grad_accum_steps: int = 1  # micro-batches per update (the batch splits into this many)
  profile_steps: tuple[int, ...] = ()  # (first, last): a jax.profiler trace of those steps

  def __post_init__(self):
    if isinstance(self.optimizer, Mapping):
      object.__setattr__(self, "optimizer", OptimizerConfig(**self.optimizer))
    for field, minimum in (("num_steps", 1), ("batch_size", 1), ("log_every", 1), ("eval_every", 0),
                           ("checkpoint_every", 0), ("keep_checkpoints", 1), ("seed", 0), ("grad_accum_steps", 1)):
      check_int(field, getattr(self, field), minimum)
    if self.batch_size % self.grad_accum_steps:
      fail("batch_size", self.batch_size, f"a multiple of grad_accum_steps={self.grad_accum_steps}")
    check_number("ema_decay", self.ema_decay, 0.0, 1.0)
    object.__setattr__(self, "profile_steps", tuple(self.profile_steps or ()))
    steps = self.profile_steps
    if steps and (len(steps) != 2 or any(isinstance(s, bool) or not isinstance(s, int) for s in steps)
                  or not 1 <= steps[0] <= steps[1] <= self.num_steps):
      fail("profile_steps", steps, f"() or (first, last) steps with 1 <= first <= last <= num_steps ({self.num_steps})")
    if self.optimizer.warmup_steps >= self.num_steps:
      fail("optimizer.warmup_steps", self.optimizer.warmup_steps,
            f"fewer steps than the run's num_steps={self.num_steps}")
    if self.dtype not in DTYPES:
      fail("dtype", self.dtype, f"one of {DTYPES}")
    if self.best_mode not in ("max", "min"):
      fail("best_mode", self.best_mode, "'max' or 'min'")
    if self.best_metric is not None and not isinstance(self.best_metric, str):
      fail("best_metric", self.best_metric, "the name of an evaluation metric, or None")

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict | Mapping) -> "TrainConfig":
    """The training fields of an experiment's config (other fields are the experiment's own)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in dict(config).items() if k in fields}
    if "optimizer" in values:
      optimizer = dict(values["optimizer"])
      known = {f.name for f in dataclasses.fields(OptimizerConfig)}
      unknown = sorted(set(optimizer) - known)
      if unknown:
        fail(f"optimizer.{unknown[0]}", optimizer[unknown[0]], f"one of the optimizer's fields {sorted(known)}")
      values["optimizer"] = OptimizerConfig(**optimizer)
    for field in ("num_steps", "batch_size"):
      if field not in values:
        raise ValueError(f"config.{field} is missing: `fit` needs it")
    if values.get("best_metric") == "":
      values["best_metric"] = None
    return cls(**values)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)
