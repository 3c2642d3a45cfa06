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


def check_train_config(config: ml_collections.ConfigDict) -> None:
  """Raises `ValueError` naming the first bad field, its value and what was expected.

  Reads the fields `cnnjax.train.fit` uses; a batch size must also split
  evenly over every device of every process.
  """
  for field, minimum in (("num_steps", 1), ("batch_size", 1), ("log_every", 1), ("eval_every", 0),
                         ("checkpoint_every", 0), ("keep_checkpoints", 1), ("seed", 0)):
    _check_int(config, field, minimum)
  devices = jax.device_count()
  if config.batch_size % devices:
    _fail("batch_size", config.batch_size, f"a multiple of the device count ({devices} devices)")
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
