"""Host input pipeline: deterministic, resumable batches from a random-access source, sharded onto a mesh.

A batch is a dict of stacked numpy arrays (images stay uint8 on the host).
`batch_size` is always the global batch; with several processes each one yields
its own contiguous slice of it, so the union over processes is the same batch
whatever the process count.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
import itertools
import math
import queue
import threading
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

Record = Mapping[str, Any]
Batch = dict[str, np.ndarray]
Transform = Callable[[Record], Record]


def num_examples(source: Sequence[Record]) -> int:
  """Number of records of a source."""
  return len(source)


def steps_per_epoch(num_examples: int, batch_size: int, drop_remainder: bool = True) -> int:
  """Batches in one epoch: floor(n / b) when dropping the remainder, else ceil(n / b)."""
  _check_positive("batch_size", batch_size)
  return num_examples // batch_size if drop_remainder else math.ceil(num_examples / batch_size)


def epoch_order(num_examples: int, *, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
  """The order of the examples in one epoch: a permutation that depends only on (seed, epoch)."""
  if not shuffle:
    return np.arange(num_examples)
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def batches(
    source: Sequence[Record],
    batch_size: int,
    *,
    seed: int,
    start_step: int = 0,
    shuffle: bool = True,
    transform: Transform | None = None,
    drop_remainder: bool = True,
    process_index: int | None = None,
    process_count: int | None = None,
) -> Iterator[Batch]:
  """Yields training batches forever, epoch after epoch, starting at step `start_step`.

  The batch of step s depends only on (seed, s) (and the source, batch size and
  process slice), so a run resumed at step s sees exactly the batches an
  uninterrupted run would. Each epoch is a fresh permutation when `shuffle`.

  Args:
    source: random-access records (`len` and integer indexing), e.g. `sources.load(...)`.
    batch_size: the global batch size; must divide by `process_count`.
    seed: seed of the shuffling.
    start_step: the step of the first batch yielded.
    shuffle: permute the examples each epoch; else read them in order.
    transform: `record -> record` run on the host per example before stacking
      (e.g. resize variable-size images, pad boxes).
    drop_remainder: drop the last incomplete batch of every epoch; else yield it
      smaller (single process only, since every process must yield equal shapes).
    process_index: the process whose slice to yield; None: this one (`jax.process_index()`).
    process_count: number of processes; None: `jax.process_count()`.

  Yields:
    Dicts of numpy arrays with leading dimension batch_size // process_count.
  """
  n = len(source)
  process_index, process_count = _this_process(process_index, process_count)
  lo, hi = _process_slice(batch_size, process_index, process_count)
  if n == 0:
    raise ValueError("source is empty: no batches to yield")
  if drop_remainder and n < batch_size:
    raise ValueError(f"batch_size={batch_size} is larger than the source ({n} examples) with drop_remainder=True")
  if not drop_remainder and process_count > 1:
    raise ValueError(f"drop_remainder=False needs process_count=1 (got {process_count}): "
                     "a smaller last batch cannot be split evenly over processes")
  if start_step < 0:
    raise ValueError(f"start_step must be >= 0, got {start_step}")
  if seed < 0:
    raise ValueError(f"seed must be >= 0 (it seeds numpy's SeedSequence), got {seed}")
  per_epoch = steps_per_epoch(n, batch_size, drop_remainder)
  epoch, order = None, None
  for step in itertools.count(start_step):
    if step // per_epoch != epoch:
      epoch = step // per_epoch
      order = epoch_order(n, seed=seed, epoch=epoch, shuffle=shuffle)
    start = (step % per_epoch) * batch_size
    global_indices = order[start:start + batch_size]
    yield _read(source, global_indices[lo:hi], transform)


def eval_batches(
    source: Sequence[Record],
    batch_size: int,
    *,
    transform: Transform | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
) -> Iterator[Batch]:
  """Yields one pass over the source in order; the last batch is padded to full size.

  Every batch has a boolean `'mask'` key, True for real examples; padding
  repeats the first example of the source. Every process yields the same
  number of batches. `process_index` and `process_count` default to this process's.
  """
  n = len(source)
  lo, hi = _process_slice(batch_size, *_this_process(process_index, process_count))
  if n == 0:
    raise ValueError("source is empty: no batches to yield")
  for start in range(0, n, batch_size):
    global_indices = np.arange(start, start + batch_size)[lo:hi]
    mask = global_indices < n
    batch = _read(source, np.where(mask, global_indices, 0), transform)
    batch["mask"] = mask
    yield batch


def prefetch_to_mesh(iterator: Iterator[Batch], mesh: Mesh, size: int = 2) -> Iterator[Any]:
  """Moves host batches onto a mesh, sharded along its `'data'` axis, up to `size` batches ahead.

  Each process passes its local slice; the result holds the global batch as
  `jax.Array`s with `NamedSharding(mesh, P('data'))`. A background thread reads
  the host batches (their per-example transforms included) and transfers them
  while the devices compute, in order; an error there is raised here.
  """
  if "data" not in mesh.axis_names:
    raise ValueError(f"mesh must have an axis named 'data', got axes {mesh.axis_names}")
  _check_positive("size", size)
  sharding = NamedSharding(mesh, P("data"))
  num_shards = mesh.shape["data"]

  def put(batch: Batch) -> Any:
    global_batch = _leading_dim(batch) * jax.process_count()
    if global_batch % num_shards:
      raise ValueError(f"global batch size {global_batch} does not divide by the {num_shards} devices "
                       "of the mesh axis 'data'; choose a batch size that is a multiple of the device count")
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)

  return _ahead(map(put, iterator), size)


_END = object()


def _ahead(iterator: Iterator[Any], size: int) -> Iterator[Any]:
  """Yields the items of `iterator`, which a daemon thread computes up to `size` items ahead."""
  ready: queue.Queue = queue.Queue(maxsize=size)
  stop = threading.Event()

  def offer(item) -> bool:
    while not stop.is_set():
      try:
        ready.put(item, timeout=0.1)
        return True
      except queue.Full:
        pass
    return False

  def produce() -> None:
    try:
      for item in iterator:
        if not offer(item):
          return
      offer(_END)
    except BaseException as e:  # handed to the consumer, which raises it
      offer(e)

  threading.Thread(target=produce, name="prefetch_to_mesh", daemon=True).start()
  try:
    while (item := ready.get()) is not _END:
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()


def process_share(rows: Any) -> Any:
  """This process's contiguous slice of a global batch (each leaf's leading axis; all of it on one host)."""
  def share(x):
    lo, hi = _process_slice(len(x), jax.process_index(), jax.process_count())
    return x[lo:hi]
  return jax.tree.map(share, rows)


def _this_process(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  return (jax.process_index() if process_index is None else process_index,
          jax.process_count() if process_count is None else process_count)


def _process_slice(batch_size: int, process_index: int, process_count: int) -> tuple[int, int]:
  _check_positive("batch_size", batch_size)
  _check_positive("process_count", process_count)
  if batch_size % process_count:
    raise ValueError(f"batch_size={batch_size} (the global batch) must divide by process_count={process_count}")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index must be in [0, {process_count}), got {process_index}")
  local = batch_size // process_count
  return process_index * local, (process_index + 1) * local


def _read(source: Sequence[Record], indices: np.ndarray, transform: Transform | None) -> Batch:
  indices = [int(i) for i in indices]
  # TFDS sources read many records in one call; plain sequences are indexed one by one.
  records = source.__getitems__(indices) if hasattr(source, "__getitems__") else [source[i] for i in indices]
  if transform is not None:
    records = [transform(r) for r in records]
  try:
    return {k: np.stack([np.asarray(r[k]) for r in records]) for k in records[0]}
  except ValueError as e:
    raise ValueError(f"records could not be stacked into a batch ({e}); pass a transform that gives every "
                     "record the same shapes (e.g. resize images, pad boxes)") from e


def _leading_dim(batch: Batch) -> int:
  sizes = {np.shape(x)[0] for x in jax.tree.leaves(batch)}
  if len(sizes) != 1:
    raise ValueError(f"batch arrays must share their leading (batch) dimension, got sizes {sorted(sizes)}")
  return sizes.pop()


def _check_positive(name: str, value: int) -> None:
  if not isinstance(value, (int, np.integer)) or value <= 0:
    raise ValueError(f"{name} must be a positive integer, got {value!r}")
