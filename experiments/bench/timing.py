"""Wall-clock timing of several step functions interleaved, and peak memory.

Interleaving (A, B, A, B, ...) exposes every function to the same background
load, so their ratio stays meaningful on a shared machine even when the
absolute times do not.
"""

from collections.abc import Callable, Mapping
import resource
import statistics
import sys
import time
from typing import Any

import jax


def time_call(fn: Callable[[], Any]) -> float:
  """Seconds one call of `fn` takes (`fn` must wait for its own results)."""
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def time_interleaved(fns: Mapping[str, Callable[[], Any]], *, steps: int, warmup: int = 1, turn: int = 1
                     ) -> dict[str, dict]:
  """Times each of `fns` `steps` times, taking turns; returns per name median/min/all seconds.

  Taking turns spreads the machine's drift over all of `fns`. A turn of several
  calls measures the steady state of a loop that runs one of them back to back:
  on 2 CPU cores, a LeNet-5 train step (~11 ms) that follows a step of the other
  framework takes ~2 ms longer in either framework, while its thread pool wakes
  and the other's spins down.

  Args:
    fns: name -> a function that runs one step and blocks until it is done
      (`jax.block_until_ready`, `torch.cuda.synchronize`).
    steps: timed calls of each function.
    warmup: untimed calls of each function at the start of each of its turns (caches, allocator, threads).
    turn: timed calls of one function before the next one's turn (the last turn may be shorter).
  """
  if steps < 1 or warmup < 0 or turn < 1:
    raise ValueError(f"steps={steps}, warmup={warmup}, turn={turn}: expected steps >= 1, warmup >= 0, turn >= 1")
  times = {name: [] for name in fns}
  for start in range(0, steps, turn):
    for name, fn in fns.items():
      for _ in range(warmup):
        fn()
      times[name] += [time_call(fn) for _ in range(min(turn, steps - start))]
  return {name: summarize(ts) for name, ts in times.items()}


def summarize(times: list[float]) -> dict[str, Any]:
  return {"median_s": statistics.median(times), "min_s": min(times), "times_s": list(times)}


def reset_peak_memory() -> None:
  """Resets the process's peak resident set (Linux `clear_refs`); GPU peaks cannot be reset."""
  if sys.platform.startswith("linux"):
    try:
      with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    except OSError:
      pass


def peak_memory(device: jax.Device | None = None) -> dict[str, Any]:
  """Peak memory: the device allocator's peak where it has one, else the host's peak RSS.

  Returns:
    `{'bytes': int, 'kind': 'device' | 'host_rss'}`.
  """
  device = device or jax.local_devices()[0]
  stats = device.memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return {"bytes": int(stats["peak_bytes_in_use"]), "kind": "device"}
  return {"bytes": host_peak_rss(), "kind": "host_rss"}


def host_peak_rss() -> int:
  """This process's peak resident set in bytes: the kernel's high-water mark of its own memory (`VmHWM`), which
  starts afresh at exec; `ru_maxrss` where there is none, which on Linux also keeps the resident set the process
  had before exec: a child started from a large parent reports at least the parent's size there."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  # ru_maxrss is in KiB on Linux and in bytes on macOS.
  scale = 1 if sys.platform == "darwin" else 1024
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
