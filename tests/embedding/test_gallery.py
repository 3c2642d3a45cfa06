"""1:K identification against galleries of growing size, against a brute-force NumPy computation."""

import math

import numpy as np
import pytest

from cnnjax.embedding import gallery


def random_faces(identities=12, per_identity=4, dim=6, spread=0.6, seed=0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(identities, dim))
  labels = np.repeat(np.arange(identities) * 3 + 5, per_identity)  # not 0..n-1: ids are looked up, not indices
  embeddings = np.repeat(centres, per_identity, axis=0)
  return embeddings + spread * rng.normal(size=embeddings.shape), labels


def brute_force(embeddings, labels, sizes, threshold, repeats, seed):
  """The documented draws, then every probe against every gallery entry, one distance at a time."""
  rng = np.random.default_rng(seed)
  ids = sorted(set(labels.tolist()))
  out = {"top1": [], "top1_at_threshold": [], "false_accept_rate": []}
  for k in sizes:
    per = {key: [] for key in out}
    for _ in range(repeats):
      enrolled = rng.choice(np.array(ids), k, replace=False)
      chosen = [int(rng.choice([i for i, y in enumerate(labels) if y == e])) for e in enrolled]
      hits = hits_t = known = accepted = impostors = 0
      for p in range(len(labels)):
        if p in chosen:
          continue
        dists = [math.dist(embeddings[p], embeddings[g]) for g in chosen]
        best = min(range(len(chosen)), key=lambda m: dists[m])
        if labels[p] in enrolled:
          known += 1
          hits += labels[chosen[best]] == labels[p]
          hits_t += labels[chosen[best]] == labels[p] and dists[best] <= threshold
        else:
          impostors += 1
          accepted += dists[best] <= threshold
      per["top1"].append(hits / known)
      per["top1_at_threshold"].append(hits_t / known)
      per["false_accept_rate"].append(accepted / impostors if impostors else float("nan"))
    for key in out:
      out[key].append(float(np.mean(per[key])))
  return out


def test_identification_matches_brute_force():
  embeddings, labels = random_faces()
  sizes = (1, 2, 5, 12)
  got = gallery.identification_vs_gallery(embeddings, labels, sizes, threshold=1.5, repeats=3, seed=7)
  expected = brute_force(embeddings, labels, sizes, 1.5, 3, 7)
  assert got["gallery_sizes"] == list(sizes)
  for key in expected:
    np.testing.assert_array_equal(got[key], expected[key], err_msg=key)  # exact: the same draws, the same counts
  assert got["top1"][0] == 1.0 and got["top1"][-1] < 1.0  # one enrolled person: every known probe is right
  assert np.isnan(got["false_accept_rate"][-1]) and got["impostor_probes"][-1] == 0
  assert got["known_probes"] == [3 * k for k in sizes]


def test_identification_errors_name_k():
  embeddings, labels = random_faces(identities=5)
  with pytest.raises(ValueError, match=r"K=6: expected an integer in \[1, 5\]"):
    gallery.identification_vs_gallery(embeddings, labels, (1, 6), threshold=1.0)
  with pytest.raises(ValueError, match=r"K=0"):
    gallery.identification_vs_gallery(embeddings, labels, (0,), threshold=1.0)
  with pytest.raises(ValueError, match=r"repeats must be an integer >= 1"):
    gallery.identification_vs_gallery(embeddings, labels, (1,), threshold=1.0, repeats=0)
  with pytest.raises(ValueError, match=r"labels \(n,\)"):
    gallery.identification_vs_gallery(embeddings, labels[:-1], (1,), threshold=1.0)


def test_pair_error_rates_match_brute_force():
  embeddings, labels = random_faces(identities=6, per_identity=3)
  got = gallery.pair_error_rates(embeddings, labels, threshold=1.2)
  genuine, impostor = [], []
  for i in range(len(labels)):
    for j in range(i + 1, len(labels)):
      (genuine if labels[i] == labels[j] else impostor).append(math.dist(embeddings[i], embeddings[j]))
  far, frr = np.mean(np.array(impostor) <= 1.2), np.mean(np.array(genuine) > 1.2)
  assert got["false_accept_rate"] == pytest.approx(far) and got["false_reject_rate"] == pytest.approx(frr)
  assert got["rank_error"] == pytest.approx(np.mean([[i < g for i in impostor] for g in genuine]))
  assert got["same_pairs"] == len(genuine) and got["different_pairs"] == len(impostor)
  np.testing.assert_allclose(gallery.compounded(0.1, [1, 2]), [0.1, 0.19])


def test_predicted_top1_matches_brute_force():
  embeddings, labels = random_faces(identities=6, per_identity=3)
  genuine, impostor = [], []
  for i in range(len(labels)):
    for j in range(i + 1, len(labels)):
      (genuine if labels[i] == labels[j] else impostor).append(math.dist(embeddings[i], embeddings[j]))
  nearer = [np.mean([x < g for x in impostor]) for g in genuine]
  got = gallery.predicted_top1(embeddings, labels, (1, 3))
  np.testing.assert_allclose(got["independent"], [1.0, (1 - np.mean(nearer)) ** 2])
  np.testing.assert_allclose(got["given_genuine"], [1.0, np.mean([(1 - f) ** 2 for f in nearer])])
  assert got["given_genuine"][1] >= got["independent"][1]  # Jensen: x^2 is convex
