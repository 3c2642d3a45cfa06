"""Triplet-family losses against brute force over every triplet (NumPy loops written here)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import embedding as emb

MARGIN = 0.3
# Jitted once per shape: op-by-op dispatch would compile every small primitive separately.
_ALL = jax.jit(emb.batch_all_triplet_loss, static_argnames=("margin", "squared"))
_HARD = jax.jit(emb.batch_hard_triplet_loss, static_argnames=("margin", "squared"))
_SEMI = jax.jit(emb.semihard_triplet_loss, static_argnames=("margin", "squared"))
_RANDOM = jax.jit(emb.random_triplet_loss, static_argnames=("margin", "squared"))


def _dist(e, i, j, squared):
  d2 = float(np.sum((e[i] - e[j]) ** 2))
  return d2 if squared else np.sqrt(d2)


def _brute_batch_all(e, y, margin, squared):
  losses, valid = [], 0
  for i in range(len(y)):
    for j in range(len(y)):
      for k in range(len(y)):
        if i != j and y[i] == y[j] and y[k] != y[i]:
          valid += 1
          losses.append(max(_dist(e, i, j, squared) - _dist(e, i, k, squared) + margin, 0.0))
  positive = [v for v in losses if v > 1e-16]
  return sum(positive) / max(len(positive), 1), len(positive) / valid


def _brute_batch_hard(e, y, margin, squared):
  total = []
  for i in range(len(y)):
    pos = [_dist(e, i, j, squared) for j in range(len(y)) if j != i and y[j] == y[i]]
    neg = [_dist(e, i, k, squared) for k in range(len(y)) if y[k] != y[i]]
    total.append(max(max(pos) - min(neg) + margin, 0.0))
  return np.mean(total)


def _brute_semihard(e, y, margin, squared):
  total = []
  for i in range(len(y)):
    for j in range(len(y)):
      if i == j or y[i] != y[j]:
        continue
      d_ap = _dist(e, i, j, squared)
      neg = [_dist(e, i, k, squared) for k in range(len(y)) if y[k] != y[i]]
      farther = [d for d in neg if d > d_ap]
      d_an = min(farther) if farther else max(neg)
      total.append(max(d_ap - d_an + margin, 0.0))
  return np.mean(total)


@pytest.fixture(scope="module")
def batch():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(4), 3)
  rng.shuffle(labels)
  e = rng.normal(size=(len(labels), 5)).astype(np.float32)
  e /= np.linalg.norm(e, axis=1, keepdims=True)
  return e, labels


def test_triplet_loss_is_the_course_formula():
  rng = np.random.default_rng(1)
  a, p, n = (rng.normal(size=(6, 4)).astype(np.float32) for _ in range(3))
  expected = sum(max(np.sum((a[b] - p[b]) ** 2) - np.sum((a[b] - n[b]) ** 2) + 0.2, 0) for b in range(6))
  loss = jax.jit(emb.triplet_loss)
  np.testing.assert_allclose(loss(a, p, n), expected, rtol=1e-5)
  np.testing.assert_allclose(loss(a, p, n, 5.0),
                             sum(np.sum((a - p) ** 2, 1) - np.sum((a - n) ** 2, 1) + 5.0), rtol=1e-5)


@pytest.mark.parametrize("squared", [True, False])
def test_mining_losses_match_brute_force(batch, squared):
  e, y = batch
  loss, fraction = _ALL(e, y, margin=MARGIN, squared=squared)
  ref_loss, ref_fraction = _brute_batch_all(e, y, MARGIN, squared)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  np.testing.assert_allclose(fraction, ref_fraction, rtol=1e-6)
  np.testing.assert_allclose(_HARD(e, y, margin=MARGIN, squared=squared),
                             _brute_batch_hard(e, y, MARGIN, squared), rtol=1e-5)
  np.testing.assert_allclose(_SEMI(e, y, margin=MARGIN, squared=squared),
                             _brute_semihard(e, y, MARGIN, squared), rtol=1e-5)


def test_semihard_falls_back_to_the_farthest_negative():
  # Positive pair far apart, negatives all closer: no semi-hard negative exists.
  e = np.array([[0.0, 0.0], [4.0, 0.0], [1.0, 0.0], [0.0, 1.5]], np.float32)
  y = np.array([0, 0, 1, 1])
  got = _SEMI(e, y, margin=0.1, squared=False)
  np.testing.assert_allclose(got, _brute_semihard(e, y, 0.1, False), rtol=1e-6)


@pytest.mark.parametrize("name", ["batch_all", "batch_hard", "semihard"])
def test_plain_distance_gradients_are_finite_for_identical_embeddings(name):
  fn = {"batch_all": lambda e, y: emb.batch_all_triplet_loss(e, y, 0.2, False)[0],
        "batch_hard": lambda e, y: emb.batch_hard_triplet_loss(e, y, 0.2, False),
        "semihard": lambda e, y: emb.semihard_triplet_loss(e, y, margin=0.2, squared=False)}[name]
  e = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # pairs at distance exactly 0
  y = jnp.array([0, 0, 1, 1])
  grad = jax.jit(jax.grad(fn))(e, y)
  assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("labels, match", [
    ([0, 0, 0, 0], "at least two identities"),
    ([0, 0, 1, 2], "at least two images"),
])
def test_mining_losses_reject_unusable_batches(labels, match):
  e = np.ones((4, 3), np.float32)
  for fn in (emb.batch_all_triplet_loss, emb.batch_hard_triplet_loss, emb.semihard_triplet_loss):
    with pytest.raises(ValueError, match=match):
      fn(e, np.array(labels))


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match="labels must have shape"):
    emb.batch_hard_triplet_loss(np.ones((4, 3)), np.array([0, 0, 1]))
  with pytest.raises(ValueError, match="positive must have shape"):
    emb.triplet_loss(np.ones((4, 3)), np.ones((3, 3)), np.ones((4, 3)))
  with pytest.raises(ValueError, match="triplets must have shape"):
    emb.random_triplet_loss(np.ones((4, 3)), np.zeros((4, 2), np.int32))


@pytest.mark.parametrize("squared", [True, False])
def test_random_triplet_loss_matches_brute_force(batch, squared):
  e, _ = batch
  triplets = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 0], [2, 2, 9]], np.int32)
  eps = 0.0 if squared else 1e-6  # optax puts eps under the root
  terms = []
  for a, p, n in triplets:
    d_ap, d_an = np.sum((e[a] - e[p]) ** 2) + eps, np.sum((e[a] - e[n]) ** 2) + eps
    if not squared:
      d_ap, d_an = np.sqrt(d_ap), np.sqrt(d_an)
    terms.append(max(d_ap - d_an + MARGIN, 0.0))
  np.testing.assert_allclose(_RANDOM(e, triplets, margin=MARGIN, squared=squared), np.mean(terms), rtol=1e-5)


def test_pair_features_forms():
  f_i, f_j = np.array([[0.2, 0.5, 0.0]]), np.array([[0.6, 0.1, 0.0]])
  np.testing.assert_allclose(emb.pair_features(f_i, f_j, "l1"), [[0.4, 0.4, 0.0]], rtol=1e-6)
  np.testing.assert_allclose(emb.pair_features(f_i, f_j, "chi2"), [[0.16 / 0.8, 0.16 / 0.6, 0.0]], rtol=1e-4)
  with pytest.raises(ValueError, match="form must be one of"):
    emb.pair_features(f_i, f_j, "cosine")


@pytest.mark.parametrize("balanced", [True, False])
def test_binary_pair_loss_matches_brute_force(balanced):
  rng = np.random.default_rng(2)
  y = np.array([0, 0, 1, 1, 2])
  logits = rng.normal(size=(5, 5)).astype(np.float32)
  terms, weights, correct = [], [], []
  n_same = sum(y[i] == y[j] for i in range(5) for j in range(i + 1, 5))
  n_pairs = 10
  for i in range(5):
    for j in range(i + 1, 5):
      t = float(y[i] == y[j])
      p = 1 / (1 + np.exp(-logits[i, j]))
      terms.append(-(t * np.log(p) + (1 - t) * np.log(1 - p)))
      weights.append((0.5 / n_same if t else 0.5 / (n_pairs - n_same)) if balanced else 1 / n_pairs)
      correct.append((logits[i, j] > 0) == bool(t))
  loss, acc = jax.jit(emb.binary_pair_loss, static_argnames="balanced")(logits, y, balanced=balanced)
  np.testing.assert_allclose(loss, np.dot(terms, weights), rtol=1e-5)
  np.testing.assert_allclose(acc, np.mean(correct))
