"""Host input pipeline on grain: deterministic, resumable batches from a random-access source, sharded onto a mesh.

A batch is a dict of numpy arrays (images stay uint8 on the host) filled into
buffers allocated once per batch. `batch_size` is always the global batch; with
several processes each one reads only its own contiguous slice of it, so the
union over processes is the same batch whatever the process count. grain runs
the reading and the per-record transforms, in `worker_count` processes when
asked; a batch is built whole by one worker and its content depends only on
(seed, step), never on the number of workers or processes.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
import dataclasses
import math
import queue
import sys
import threading
from typing import Any

from absl import flags
import grain
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

Record = Mapping[str, Any]
Batch = dict[str, np.ndarray]
# A plain `record -> record` callable or `grain.transforms.Map`, or a `grain.transforms.RandomMap`
# whose `random_map(record, rng)` gets a generator keyed by (seed, step, position in the global batch).
Transform = Callable[[Record], Record] | grain.transforms.Map | grain.transforms.RandomMap


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
    worker_count: int = 0,
) -> grain.DatasetIterator:
  """Yields training batches forever, epoch after epoch, starting at step `start_step`.

  The batch of step s depends only on (seed, s) (and the source, batch size and
  process slice), so a run resumed at step s sees exactly the batches an
  uninterrupted run would. Each epoch is a fresh permutation when `shuffle`.

  Args:
    source: random-access records (`len` and integer indexing), e.g. `sources.load(...)`.
    batch_size: the global batch size; must divide by `process_count`.
    seed: seed of the shuffling and of a `RandomMap` transform's generators.
    start_step: the step of the first batch yielded.
    shuffle: permute the examples each epoch; else read them in order.
    transform: run on the host per example before batching (decode and crop
      JPEGs, resize, pad boxes); see `Transform`.
    drop_remainder: drop the last incomplete batch of every epoch; else yield it
      smaller (single process only, since every process must yield equal shapes).
    process_index: the process whose slice to yield; None: this one (`jax.process_index()`).
    process_count: number of processes; None: `jax.process_count()`.
    worker_count: grain worker processes building batches; 0 builds them in this process.

  Returns:
    A grain iterator (checkpointable with `get_state` / `set_state`) of dicts of
    numpy arrays with leading dimension batch_size // process_count.
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
  if not isinstance(start_step, (int, np.integer)) or start_step < 0:
    raise ValueError(f"start_step must be >= 0 (an integer), got {start_step!r}")
  if not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"seed must be >= 0 (an integer: it seeds numpy's SeedSequence), got {seed!r}")
  reader = _TrainReader(_Reader(source, transform, seed, batch_size), n, steps_per_epoch(n, batch_size, drop_remainder),
                        shuffle, lo, hi)
  return _iterate(grain.MapDataset.range(int(start_step), sys.maxsize).map(reader), worker_count)


def eval_batches(
    source: Sequence[Record],
    batch_size: int,
    *,
    transform: Transform | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    worker_count: int = 0,
) -> grain.DatasetIterator:
  """Yields one pass over the source in order; the last batch is padded to full size.

  Every batch has a boolean `'mask'` key, True for real examples; padding
  repeats the first example of the source. Every process yields the same
  number of batches. `process_index` and `process_count` default to this process's.
  A `RandomMap` transform gets generators keyed by seed 0.
  """
  n = len(source)
  lo, hi = _process_slice(batch_size, *_this_process(process_index, process_count))
  if n == 0:
    raise ValueError("source is empty: no batches to yield")
  reader = _EvalReader(_Reader(source, transform, 0, batch_size), n, lo, hi)
  return _iterate(grain.MapDataset.range(math.ceil(n / batch_size)).map(reader), worker_count)


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


@dataclasses.dataclass(frozen=True)
class _Reader:
  """Reads records by global index, transforms each one and fills them into one batch's buffers."""
  source: Sequence[Record]
  transform: Transform | None
  seed: int
  global_batch: int

  def read(self, step: int, positions: np.ndarray, indices: np.ndarray) -> Batch:
    """The records `indices`, at `positions` of the global batch of `step`, as one batch."""
    indices = [int(i) for i in indices]
    # One by one: a TFDS source's batched `__getitems__` reads through a thread pool that costs several times the
    # CPU time a record (BUILD.md); the parallelism comes from the worker processes.
    records = [self.source[i] for i in indices]
    batch = None
    for row, (position, index, record) in enumerate(zip(positions, indices, records)):
      record = self._transform(record, step, int(position), index)
      if batch is None:
        batch = {k: _buffer(len(indices), v) for k, v in record.items()}
      _fill(batch, row, record, index)
    return batch

  def _transform(self, record: Record, step: int, position: int, index: int) -> Record:
    t = self.transform
    try:
      if t is None:
        return record
      if isinstance(t, grain.transforms.RandomMap):
        # Keyed by where the record sits in the global stream, so workers and processes do not matter.
        return t.random_map(record, np.random.default_rng([self.seed, step, position]))
      return t.map(record) if isinstance(t, grain.transforms.Map) else t(record)
    except (ValueError, OSError) as e:
      raise ValueError(f"{_describe(self.source)} record {index} could not be transformed: {e}") from e


def _buffer(rows: int, value: Any) -> np.ndarray:
  value = np.asarray(value)
  # Bytes and strings vary in length from record to record: hold them as objects, not truncated to the first.
  dtype = value.dtype if value.dtype.kind in "biufc" else object
  return np.empty((rows,) + value.shape, dtype)


def _fill(batch: Batch, row: int, record: Record, index: int) -> None:
  if set(record) != set(batch):
    raise ValueError(f"record {index} has keys {sorted(record)}, the batch {sorted(batch)}")
  for key, value in record.items():
    try:
      batch[key][row] = value
    except ValueError as e:
      raise ValueError(f"records could not be stacked into a batch ({key!r} of record {index} has shape "
                       f"{np.shape(value)}, the batch {batch[key].shape[1:]}); pass a transform that gives every "
                       "record the same shapes (e.g. resize images, pad boxes)") from e


@dataclasses.dataclass(frozen=True)
class _TrainReader:
  """step -> this process's slice of the training batch of that step."""
  reader: _Reader
  num_examples: int
  per_epoch: int
  shuffle: bool
  lo: int
  hi: int

  def __call__(self, step: int) -> Batch:
    epoch, k = divmod(step, self.per_epoch)
    order = self._order(epoch)
    batch_size = self.reader.global_batch
    positions = np.arange(k * batch_size, min((k + 1) * batch_size, self.num_examples))[self.lo:self.hi]
    return self.reader.read(step, positions - k * batch_size, order[positions])

  def _order(self, epoch: int) -> np.ndarray:
    # One permutation per epoch, cached for the consecutive steps of that epoch.
    cached = getattr(self, "_cached", None)
    if cached is None or cached[0] != epoch:
      cached = (epoch, epoch_order(self.num_examples, seed=self.reader.seed, epoch=epoch, shuffle=self.shuffle))
      object.__setattr__(self, "_cached", cached)
    return cached[1]


@dataclasses.dataclass(frozen=True)
class _EvalReader:
  """batch number -> this process's slice of that evaluation batch, padded with the first record, with a mask."""
  reader: _Reader
  num_examples: int
  lo: int
  hi: int

  def __call__(self, number: int) -> Batch:
    batch_size = self.reader.global_batch
    indices = np.arange(number * batch_size, (number + 1) * batch_size)[self.lo:self.hi]
    mask = indices < self.num_examples
    batch = self.reader.read(number, np.arange(self.lo, self.hi), np.where(mask, indices, 0))
    batch["mask"] = mask
    return batch


def _iterate(dataset: grain.MapDataset, worker_count: int) -> grain.DatasetIterator:
  if not isinstance(worker_count, (int, np.integer)) or worker_count < 0:
    raise ValueError(f"worker_count must be an integer >= 0, got {worker_count!r}")
  # Elements are whole batches: read each one in the thread that asks for it (the prefetch thread of
  # `prefetch_to_mesh`) or in a worker process, not in grain's default pool of 16 reader threads.
  iterable = dataset.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
  if worker_count:
    # grain reads its own absl flags; a library caller (a notebook, pytest) has parsed none.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=int(worker_count),
                                                                 per_worker_buffer_size=2))
  return iter(iterable)


def _describe(source: Any) -> str:
  info = getattr(source, "dataset_info", None)
  if info is not None:
    return f"dataset {getattr(info, 'full_name', info.name)!r} split {str(getattr(source, 'split', '?'))!r}"
  return f"source {type(source).__name__}"


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


def _leading_dim(batch: Batch) -> int:
  sizes = {np.shape(x)[0] for x in jax.tree.leaves(batch)}
  if len(sizes) != 1:
    raise ValueError(f"batch arrays must share their leading (batch) dimension, got sizes {sorted(sizes)}")
  return sizes.pop()


def _check_positive(name: str, value: int) -> None:
  if not isinstance(value, (int, np.integer)) or value <= 0:
    raise ValueError(f"{name} must be a positive integer, got {value!r}")
