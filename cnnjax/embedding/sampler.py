"""P identities x K images per batch, a pure function of (seed, step) so resumed runs see the same batches."""

from typing import Iterator, Mapping

import numpy as np


class PKSampler:
  """Draws batches of `p` identities with `k` images each (both without replacement).

  Attributes:
    labels: identity of every example, shape (n,).
    p: identities per batch.
    k: images per identity.
    seed: batches depend on (seed, step) only.
  """

  def __init__(self, labels: np.ndarray, p: int, k: int, *, seed: int = 0):
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
      raise ValueError(f"labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}")
    for name, value in (("p", p), ("k", k)):
      if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    ids, counts = np.unique(labels, return_counts=True)
    eligible = ids[counts >= k]
    if len(eligible) < p:
      raise ValueError(
          f"p={p} identities with k={k} images each are needed, but only {len(eligible)} of the "
          f"{len(ids)} identities have {k} or more images (the most any has is {counts.max(initial=0)})")
    self.labels, self.p, self.k, self.seed = labels, int(p), int(k), int(seed)
    self._ids = eligible
    self._members = {int(i): np.flatnonzero(labels == i) for i in eligible}

  @property
  def batch_size(self) -> int:
    return self.p * self.k

  def indices(self, step: int) -> np.ndarray:
    """Example indices of the batch at `step`, identity-major: (p * k,)."""
    rng = np.random.default_rng([self.seed, step])
    people = rng.choice(self._ids, self.p, replace=False)
    return np.concatenate([rng.choice(self._members[int(i)], self.k, replace=False) for i in people])

  def random_triplets(self, step: int) -> np.ndarray:
    """One random (anchor, positive, negative) row per batch position, indices into the batch: (p*k, 3).

    Needs k >= 2 and p >= 2 (the random-triplet baseline).
    """
    if self.k < 2 or self.p < 2:
      raise ValueError(f"random triplets need p >= 2 and k >= 2, got p={self.p}, k={self.k}")
    rng = np.random.default_rng([self.seed, step, 1])
    anchor = np.arange(self.batch_size)
    person, slot = anchor // self.k, anchor % self.k
    # A different slot of the same person, and any slot of a different person.
    positive = person * self.k + (slot + rng.integers(1, self.k, self.batch_size)) % self.k
    other = (person + rng.integers(1, self.p, self.batch_size)) % self.p
    negative = other * self.k + rng.integers(0, self.k, self.batch_size)
    return np.stack([anchor, positive, negative], axis=1).astype(np.int32)

  def batches(self, data: Mapping[str, np.ndarray], start_step: int = 0, *,
              with_triplets: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """Endless batches from arrays indexed like `labels` (each batch: every key, plus 'triplets' if asked)."""
    for name, array in data.items():
      if len(array) != len(self.labels):
        raise ValueError(f"data[{name!r}] has {len(array)} rows, expected {len(self.labels)} like labels")
    step = start_step
    while True:
      idx = self.indices(step)
      batch = {name: array[idx] for name, array in data.items()}
      if with_triplets:
        batch["triplets"] = self.random_triplets(step)
      yield batch
      step += 1
