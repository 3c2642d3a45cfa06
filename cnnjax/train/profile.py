"""A `jax.profiler` trace of a range of train steps, for TensorBoard's profile plugin or Perfetto."""

from collections.abc import Sequence
from typing import Any

import jax
from absl import logging


class Profiler:
  """Traces steps `first`..`last` (1-based, inclusive) into `logdir`; does nothing for `steps=()`.

  The trace ends after the last step's results are ready, so it holds that step's device work.
  """

  def __init__(self, logdir: str, steps: Sequence[int] = (), *, enabled: bool = True):
    steps = tuple(steps or ())  # checked with the config (`cnnjax.train.TrainConfig`)
    self.logdir = logdir
    self.first, self.last = steps if steps and enabled else (0, -1)
    self.tracing = False

  def before(self, step: int) -> None:
    if step == self.first:
      jax.profiler.start_trace(self.logdir)
      self.tracing = True

  def after(self, step: int, outputs: Any) -> None:
    if self.tracing and step == self.last:
      jax.block_until_ready(outputs)
      self.close()
      logging.info("profile of steps %d-%d written to %s", self.first, self.last, self.logdir)

  def close(self) -> None:
    """Ends a trace still running (the run stopped or ended inside the range)."""
    if self.tracing:
      jax.profiler.stop_trace()
      self.tracing = False
