"""Host pipeline: deterministic resumable batches, process slices, padded eval batches, mesh prefetch."""

import itertools
import os
import textwrap
import time

import grain
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np
import pytest

from cnnjax.data import pipeline


def make_source(n, size=4):
  """Records whose image encodes the index, so batches can be checked by content."""
  return [{"image": np.full((size, size, 1), i % 256, np.uint8), "label": i % 3, "index": i} for i in range(n)]


def take(iterator, k):
  return list(itertools.islice(iterator, k))


def test_resumed_run_sees_the_same_batches_across_epochs():
  source = make_source(10)
  full = take(pipeline.batches(source, 3, seed=7), 12)  # 3 batches an epoch: 4 epochs
  for start in (0, 2, 3, 5, 11):
    resumed = take(pipeline.batches(source, 3, seed=7, start_step=start), 12 - start)
    for a, b in zip(full[start:], resumed):
      for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_each_epoch_is_a_permutation_that_depends_on_seed_and_epoch():
  source = make_source(12)
  epochs = [np.concatenate([b["index"] for b in take(pipeline.batches(source, 4, seed=1, start_step=3 * e), 3)])
            for e in range(3)]
  for order in epochs:
    np.testing.assert_array_equal(np.sort(order), np.arange(12))
  assert not np.array_equal(epochs[0], epochs[1])
  other_seed = np.concatenate([b["index"] for b in take(pipeline.batches(source, 4, seed=2), 3)])
  assert not np.array_equal(epochs[0], other_seed)
  ordered = np.concatenate([b["index"] for b in take(pipeline.batches(source, 4, seed=1, shuffle=False), 6)])
  np.testing.assert_array_equal(ordered, np.tile(np.arange(12), 2))


def test_batches_stack_records_and_apply_the_transform():
  source = make_source(8)
  batch = next(pipeline.batches(source, 4, seed=0, transform=lambda r: {**r, "image": r["image"][:2]}))
  assert batch["image"].shape == (4, 2, 4, 1) and batch["image"].dtype == np.uint8
  np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], batch["index"])
  np.testing.assert_array_equal(batch["label"], batch["index"] % 3)


def test_encoded_bytes_of_any_length_are_kept_whole():
  source = [{"image": b"x" * (i + 1), "label": i} for i in range(4)]
  batch = next(pipeline.batches(source, 4, seed=0, shuffle=False))
  assert list(batch["image"]) == [b"x", b"xx", b"xxx", b"xxxx"] and batch["label"].dtype == np.int64


def test_remainder_is_dropped_or_kept():
  source = make_source(10)
  assert [len(b["index"]) for b in take(pipeline.batches(source, 4, seed=0), 4)] == [4, 4, 4, 4]
  kept = take(pipeline.batches(source, 4, seed=0, drop_remainder=False), 6)
  assert [len(b["index"]) for b in kept] == [4, 4, 2, 4, 4, 2]
  np.testing.assert_array_equal(np.sort(np.concatenate([b["index"] for b in kept[:3]])), np.arange(10))


def test_processes_get_contiguous_slices_of_the_global_batch():
  source = make_source(16)
  whole = take(pipeline.batches(source, 8, seed=3), 5)
  parts = [take(pipeline.batches(source, 8, seed=3, process_index=i, process_count=4), 5) for i in range(4)]
  for step in range(5):
    np.testing.assert_array_equal(np.concatenate([p[step]["index"] for p in parts]), whole[step]["index"])


def test_bad_arguments_are_rejected():
  source = make_source(10)
  with pytest.raises(ValueError, match="batch_size=6.*process_count=4"):
    next(pipeline.batches(source, 6, seed=0, process_count=4))
  with pytest.raises(ValueError, match="batch_size=16 is larger than the source"):
    next(pipeline.batches(source, 16, seed=0))
  with pytest.raises(ValueError, match="batch_size must be a positive integer"):
    next(pipeline.batches(source, 0, seed=0))
  with pytest.raises(ValueError, match="seed must be >= 0"):
    next(pipeline.batches(source, 2, seed=-1))
  with pytest.raises(ValueError, match="process_index"):
    next(pipeline.eval_batches(source, 4, process_index=2, process_count=2))
  with pytest.raises(ValueError, match="could not be stacked"):
    ragged = [{"image": np.zeros((i + 1, 2), np.uint8)} for i in range(4)]
    next(pipeline.batches(ragged, 2, seed=0, shuffle=False))


class NoisyImage(grain.transforms.RandomMap):
  """Adds a random offset to the image; dies (in a worker) or fails on chosen records."""

  def __init__(self, exit_on=-1, fail_on=-1):
    self.exit_on, self.fail_on = exit_on, fail_on

  def random_map(self, record, rng):
    if record["index"] == self.exit_on:
      os._exit(3)
    if record["index"] == self.fail_on:
      raise ValueError("not a JPEG")
    return {**record, "noise": rng.integers(0, 1 << 30, size=2)}


def test_random_transforms_depend_on_seed_and_step_not_on_workers_or_processes():
  source = make_source(12)
  inline = take(pipeline.batches(source, 4, seed=5, transform=NoisyImage()), 6)
  noise = np.concatenate([b["noise"] for b in inline])
  assert len(np.unique(noise[:, 0])) == len(noise)  # a fresh draw for every record of every step
  workers = pipeline.batches(source, 4, seed=5, transform=NoisyImage(), worker_count=2)
  resumed = pipeline.batches(source, 4, seed=5, start_step=3, transform=NoisyImage())
  halves = [pipeline.batches(source, 4, seed=5, transform=NoisyImage(), process_index=i, process_count=2)
            for i in range(2)]
  try:
    got = take(workers, 6)
  finally:
    workers.close()
  halves = [take(h, 6) for h in halves]
  for step, batch in enumerate(inline):
    for key in batch:
      np.testing.assert_array_equal(got[step][key], batch[key])
      np.testing.assert_array_equal(np.concatenate([h[step][key] for h in halves]), batch[key])
  for a, b in zip(take(resumed, 3), inline[3:]):
    np.testing.assert_array_equal(a["noise"], b["noise"])
  other = next(pipeline.batches(source, 4, seed=6, transform=NoisyImage()))
  assert not np.array_equal(other["noise"], inline[0]["noise"])


def test_iterator_state_round_trips():
  source = make_source(10)
  it = pipeline.batches(source, 3, seed=1, transform=NoisyImage())
  take(it, 4)
  state = it.get_state()
  expected = take(it, 3)
  restored = pipeline.batches(source, 3, seed=1, transform=NoisyImage())
  restored.set_state(state)
  for a, b in zip(take(restored, 3), expected):
    np.testing.assert_array_equal(a["noise"], b["noise"])
    np.testing.assert_array_equal(a["index"], b["index"])


def test_a_record_that_fails_is_named_and_a_dead_worker_raises():
  source = make_source(8)
  with pytest.raises(ValueError, match="source list record 5 could not be transformed: not a JPEG"):
    take(pipeline.batches(source, 4, seed=0, shuffle=False, transform=NoisyImage(fail_on=5)), 2)
  it = pipeline.batches(source, 4, seed=0, shuffle=False, transform=NoisyImage(exit_on=5), worker_count=1)
  try:
    with pytest.raises(RuntimeError, match="terminated unexpectedly with exit code 3"):
      take(it, 2)
  finally:
    it.close()
  with pytest.raises(ValueError, match="worker_count must be an integer >= 0"):
    pipeline.batches(source, 4, seed=0, worker_count=-1)


def test_eval_batches_cover_the_source_in_order_with_a_mask():
  source = make_source(10)
  got = list(pipeline.eval_batches(source, 4))
  assert len(got) == 3 and all(b["index"].shape == (4,) and b["mask"].dtype == bool for b in got)
  mask = np.concatenate([b["mask"] for b in got])
  np.testing.assert_array_equal(mask, np.arange(12) < 10)
  np.testing.assert_array_equal(np.concatenate([b["index"] for b in got])[mask], np.arange(10))
  parts = [list(pipeline.eval_batches(source, 4, process_index=i, process_count=2)) for i in range(2)]
  assert len(parts[0]) == len(parts[1]) == 3
  for step in range(3):
    for key in ("index", "mask"):
      np.testing.assert_array_equal(np.concatenate([p[step][key] for p in parts]), got[step][key])


def test_steps_per_epoch():
  assert pipeline.steps_per_epoch(10, 4) == 2
  assert pipeline.steps_per_epoch(10, 4, drop_remainder=False) == 3
  assert pipeline.num_examples(make_source(7)) == 7


def test_prefetch_to_mesh_on_one_device():
  mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
  host = take(pipeline.batches(make_source(8), 4, seed=0), 3)
  on_device = list(pipeline.prefetch_to_mesh(iter(host), mesh, size=2))
  assert len(on_device) == 3
  for h, d in zip(host, on_device):
    assert isinstance(d["image"], jax.Array)
    assert d["image"].sharding == NamedSharding(mesh, P("data"))
    np.testing.assert_array_equal(np.asarray(d["index"]), h["index"])
  with pytest.raises(ValueError, match="axis named 'data'"):
    next(pipeline.prefetch_to_mesh(iter(host), Mesh(np.array(jax.devices()[:1]), ("batch",))))


def test_prefetch_keeps_order_and_at_most_size_batches_ahead():
  pulled = []

  def source():
    for i in range(6):
      pulled.append(i)
      yield {"x": np.full((2,), i)}

  mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
  it = pipeline.prefetch_to_mesh(source(), mesh, size=2)
  first = next(it)
  deadline = time.monotonic() + 30
  while len(pulled) < 4 and time.monotonic() < deadline:
    time.sleep(0.01)
  time.sleep(0.2)
  assert int(first["x"][0]) == 0 and pulled == [0, 1, 2, 3]  # 2 queued, 1 held by the thread, no more
  assert [int(b["x"][0]) for b in it] == [1, 2, 3, 4, 5]


def test_prefetch_raises_the_error_of_the_source_in_order():
  def source():
    yield {"x": np.zeros((2,))}
    raise OSError("disk gone")

  it = pipeline.prefetch_to_mesh(source(), Mesh(np.array(jax.devices()[:1]), ("data",)))
  assert next(it)["x"].shape == (2,)
  with pytest.raises(OSError, match="disk gone"):
    next(it)


def test_prefetch_shards_over_four_devices_in_a_subprocess(fresh_python):
  code = textwrap.dedent("""
      import jax, numpy as np
      from jax.sharding import Mesh
      from cnnjax.data import pipeline
      mesh = Mesh(np.array(jax.devices()), ("data",))
      batch = {"x": np.arange(8 * 3).reshape(8, 3)}
      (out,) = pipeline.prefetch_to_mesh(iter([batch]), mesh)
      shards = sorted((s.index[0].start, np.asarray(s.data).tolist()) for s in out["x"].addressable_shards)
      assert [s[0] for s in shards] == [0, 2, 4, 6], shards
      assert all(np.array_equal(d, batch["x"][i:i + 2]) for i, d in shards)
      try:
        next(pipeline.prefetch_to_mesh(iter([{"x": np.zeros((6, 3))}]), mesh))
      except ValueError as e:
        assert "6" in str(e) and "4 devices" in str(e), e
      else:
        raise AssertionError("no error for a batch of 6 on 4 devices")
      print("ok", len(jax.devices()))
  """)
  assert fresh_python(code, XLA_FLAGS="--xla_force_host_platform_device_count=4") == ["ok", "4"]
