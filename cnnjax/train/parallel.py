"""Data parallelism over a mesh of every device, on one host or several; the one `jax.jit` of steps."""

import os
from typing import Any, Callable

import jax
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cnnjax.ops import xla_cpu

DATA_AXIS = "data"


def maybe_initialize_distributed(
    coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
  """Joins several processes into one JAX runtime when asked to.

  Asked by the arguments (from the config) or by the environment variables
  `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`; on a
  cluster JAX finds these itself (SLURM, TPU pods) when only the address is set.
  """
  coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
  if not coordinator_address:
    return
  num_processes = num_processes or _env_int("JAX_NUM_PROCESSES")
  process_id = process_id if process_id is not None and process_id >= 0 else _env_int("JAX_PROCESS_ID")
  # Cross-process collectives for CPU devices (GPU and TPU bring their own); asking for the
  # backend here would initialise it too early.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address, num_processes=num_processes, process_id=process_id)
  logging.info("process %d of %d joined %s", jax.process_index(), jax.process_count(), coordinator_address)


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  return int(value) if value else None


def data_mesh() -> Mesh:
  """A one-axis mesh (`'data'`) over every device of every process."""
  # Auto axes: XLA propagates the batch sharding through the step (explicit axes would make
  # every op, e.g. a vmap over per-example keys, spell out its sharding).
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def check_batch_size(batch_size: int, grad_accum_steps: int = 1) -> None:
  """Raises ValueError unless the global batch (each micro-batch of it) splits evenly over every device."""
  devices = jax.device_count()
  if batch_size % devices:
    raise ValueError(f"config.batch_size={batch_size!r}: expected a multiple of the device count ({devices} devices)")
  if batch_size % (devices * grad_accum_steps):
    raise ValueError(f"config.batch_size={batch_size!r}: expected a multiple of the device count times "
                     f"grad_accum_steps ({devices} devices x {grad_accum_steps} micro-batches)")


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Puts every leaf on every device of the mesh."""
  return jax.device_put(tree, NamedSharding(mesh, P()))


def jit(fn: Callable, *, mesh: Mesh | None = None, **jit_kwargs: Any) -> Callable:
  """`jax.jit(fn, **jit_kwargs)` with the compiler options of the platform it runs on (`mesh`'s, else the
  default backend's): every step of cnnjax is jitted here, so it gets XLA:CPU's fast settings on the CPU and
  none elsewhere."""
  platform = mesh.devices.flat[0].platform if mesh is not None else jax.default_backend()
  return jax.jit(fn, compiler_options=xla_cpu.compiler_options(platform), **jit_kwargs)


def compile_train_step(step: Callable, mesh: Mesh) -> Callable:
  """Jits `step(state, batch)`: state replicated and donated, batch split over `'data'`."""
  replicated, split = NamedSharding(mesh, P()), NamedSharding(mesh, P(DATA_AXIS))
  return jit(step, mesh=mesh, in_shardings=(replicated, split), out_shardings=(replicated, replicated),
             donate_argnums=0)


def compile_eval_step(step: Callable, mesh: Mesh) -> Callable:
  """Jits `step(state, batch)` with the same shardings, nothing donated."""
  replicated, split = NamedSharding(mesh, P()), NamedSharding(mesh, P(DATA_AXIS))
  return jit(step, mesh=mesh, in_shardings=(replicated, split), out_shardings=replicated)
