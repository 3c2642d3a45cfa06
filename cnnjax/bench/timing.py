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


def time_interleaved(fns: Mapping[str, Callable[[], Any]], *, steps: int, warmup: int = 1) -> dict[str, dict]:
  """Times each of `fns` `steps` times, taking turns; returns per name median/min/all seconds.

  Args:
    fns: name -> a function that runs one step and blocks until it is done
      (`jax.block_until_ready`, `torch.cuda.synchronize`).
    steps: timed calls of each function.
    warmup: untimed calls of each function first (caches, allocator, threads).
  """
  if steps < 1 or warmup < 0:
    raise ValueError(f"steps={steps}, warmup={warmup}: expected steps >= 1 and warmup >= 0")
  for fn in fns.values():
    for _ in range(warmup):
      fn()
  times = {name: [] for name in fns}
  for _ in range(steps):
    for name, fn in fns.items():
      times[name].append(time_call(fn))
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
  return {"bytes": _host_peak_rss(), "kind": "host_rss"}


def _host_peak_rss() -> int:
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
