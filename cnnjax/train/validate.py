"""Checks of the training fields of a config, before any data is read or anything compiles."""

import jax
import ml_collections

from cnnjax.train.optim import OPTIMIZERS, SCHEDULES

DTYPES = ("float32", "bfloat16", "float16")


def _fail(field: str, value, expected: str) -> None:
  raise ValueError(f"config.{field}={value!r}: expected {expected}")


def _check_int(config: ml_collections.ConfigDict, field: str, minimum: int) -> None:
  value = config.get(field, minimum)
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    _fail(field, value, f"an integer >= {minimum}")


def _check_number(field: str, value, low: float, high: float, *, high_open: bool = False) -> None:
  ok = not isinstance(value, bool) and isinstance(value, (int, float)) and low <= value and (
      value < high if high_open else value <= high)
  if not ok:
    _fail(field, value, f"a number in [{low}, {high}{')' if high_open else ']'}")


def check_train_config(config: ml_collections.ConfigDict) -> None:
  """Raises `ValueError` naming the first bad field, its value and what was expected.

  Reads the fields `cnnjax.train.fit` uses; a batch size must also split
  evenly over every device of every process.
  """
  for field, minimum in (("num_steps", 1), ("batch_size", 1), ("log_every", 1), ("eval_every", 0),
                         ("checkpoint_every", 0), ("keep_checkpoints", 1), ("seed", 0), ("grad_accum_steps", 1)):
    _check_int(config, field, minimum)
  devices, accum = jax.device_count(), config.get("grad_accum_steps", 1)
  if config.batch_size % devices:
    _fail("batch_size", config.batch_size, f"a multiple of the device count ({devices} devices)")
  if config.batch_size % (devices * accum):
    _fail("batch_size", config.batch_size, f"a multiple of the device count times grad_accum_steps "
          f"({devices} devices x {accum} micro-batches)")
  _check_training_options(config)
  optimizer = config.optimizer
  if optimizer.name not in OPTIMIZERS:
    _fail("optimizer.name", optimizer.name, f"one of {OPTIMIZERS}")
  if optimizer.get("schedule", "constant") not in SCHEDULES:
    _fail("optimizer.schedule", optimizer.schedule, f"one of {SCHEDULES}")
  if not optimizer.learning_rate > 0:
    _fail("optimizer.learning_rate", optimizer.learning_rate, "a positive number")
  if config.get("dtype", "float32") not in DTYPES:
    _fail("dtype", config.dtype, f"one of {DTYPES}")
  if config.get("best_mode", "max") not in ("max", "min"):
    _fail("best_mode", config.best_mode, "'max' or 'min'")


def _check_training_options(config: ml_collections.ConfigDict) -> None:
  """The optional fields of issue 22: EMA, profiling, mixup/CutMix and RandAugment."""
  _check_number("ema_decay", config.get("ema_decay", 0.0), 0.0, 1.0, high_open=True)
  for field in ("mixup_alpha", "cutmix_alpha"):
    _check_number(field, config.get(field, 0.0), 0.0, float("inf"))
  _check_number("mix_switch_prob", config.get("mix_switch_prob", 0.5), 0.0, 1.0)
  randaugment = config.get("randaugment") or ml_collections.ConfigDict()
  num_ops = randaugment.get("num_ops", 0)
  if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 0:
    _fail("randaugment.num_ops", num_ops, "an integer >= 0 (0 turns RandAugment off)")
  _check_number("randaugment.magnitude", randaugment.get("magnitude", 0.0), 0.0, 10.0)
  steps = tuple(config.get("profile_steps", ()) or ())
  if steps and (len(steps) != 2 or any(isinstance(s, bool) or not isinstance(s, int) for s in steps)
                or not 1 <= steps[0] <= steps[1] <= config.num_steps):
    _fail("profile_steps", steps,
          f"() or (first, last) steps with 1 <= first <= last <= num_steps ({config.num_steps})")
