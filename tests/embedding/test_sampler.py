"""P x K sampling: composition, determinism per (seed, step), random triplets, errors."""

import numpy as np
import pytest

from cnnjax.embedding import PKSampler


@pytest.fixture(scope="module")
def labels():
  # 6 identities with 5, 5, 4, 4, 2 and 1 images, interleaved.
  counts = [5, 5, 4, 4, 2, 1]
  y = np.concatenate([np.full(c, i) for i, c in enumerate(counts)])
  return np.random.default_rng(0).permutation(y)


def test_batches_are_p_identities_times_k_distinct_images(labels):
  sampler = PKSampler(labels, 3, 4, seed=1)
  for step in range(20):
    idx = sampler.indices(step)
    assert idx.shape == (12,) and len(set(idx.tolist())) == 12
    y = labels[idx].reshape(3, 4)
    assert np.all(y == y[:, :1]) and len(set(y[:, 0].tolist())) == 3
    assert set(y[:, 0].tolist()) <= {0, 1, 2, 3}  # only identities with >= k images


def test_batches_depend_on_seed_and_step_only(labels):
  data = {"x": np.arange(len(labels)) * 10, "label": labels}
  a = PKSampler(labels, 2, 2, seed=3)
  full = [b for _, b in zip(range(6), a.batches(data))]
  resumed = [b for _, b in zip(range(2), PKSampler(labels, 2, 2, seed=3).batches(data, start_step=4))]
  for got, want in zip(resumed, full[4:]):
    np.testing.assert_array_equal(got["x"], want["x"])
  np.testing.assert_array_equal(full[0]["label"], labels[full[0]["x"] // 10])
  other = PKSampler(labels, 2, 2, seed=4)
  assert any(not np.array_equal(a.indices(s), other.indices(s)) for s in range(5))


def test_random_triplets_are_valid(labels):
  sampler = PKSampler(labels, 3, 3, seed=0)
  batch = next(sampler.batches({"label": labels}, start_step=7, with_triplets=True))
  t, y = batch["triplets"], batch["label"]
  assert t.shape == (9, 3) and t.dtype == np.int32
  np.testing.assert_array_equal(t[:, 0], np.arange(9))
  assert np.all(t[:, 1] != t[:, 0]) and np.all(y[t[:, 1]] == y[t[:, 0]]) and np.all(y[t[:, 2]] != y[t[:, 0]])
  np.testing.assert_array_equal(sampler.random_triplets(7), t)


@pytest.mark.parametrize("p, k, match", [
    (5, 4, "only 4 of the 6 identities"),
    (2, 6, "only 0 of the 6"),
    (0, 2, "p must be a positive integer"),
    (2, 1.5, "k must be a positive integer"),
])
def test_unsatisfiable_p_or_k_raise(labels, p, k, match):
  with pytest.raises(ValueError, match=match):
    PKSampler(labels, p, k)


def test_other_errors(labels):
  with pytest.raises(ValueError, match="1-D integer"):
    PKSampler(labels.astype(float), 2, 2)
  with pytest.raises(ValueError, match="random triplets need"):
    PKSampler(labels, 2, 1).random_triplets(0)
  with pytest.raises(ValueError, match=r"data\['x'\] has 3 rows"):
    next(PKSampler(labels, 2, 2).batches({"x": np.zeros(3)}))
