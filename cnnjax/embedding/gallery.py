"""1:K recognition against a gallery of K enrolled people, and what 1:1 verification predicts of it.

A probe is answered with the identity of its nearest gallery entry; with a threshold, it is accepted only when
that entry is at or below the threshold (else 'unknown'). The course's point: each of the K comparisons can
err, so the error of 1:K recognition grows with K from the 1:1 (per-comparison) error.
"""

from typing import Sequence

import numpy as np

from cnnjax.embedding.verify import enrol, recognize


def _pair_distances(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Distances of every pair of distinct images: (same-identity ones, different-identity ones sorted, and for
  each same-identity distance g the fraction of different-identity distances below g, ties counted half)."""
  embeddings = np.asarray(embeddings, np.float64)
  labels = np.asarray(labels)
  sq = np.sum(embeddings * embeddings, axis=1)
  d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * embeddings @ embeddings.T, 0.0))
  upper = np.triu_indices(len(labels), 1)
  dist, same = d[upper], labels[upper[0]] == labels[upper[1]]
  if same.all() or not same.any():
    raise ValueError("labels must give both same-identity and different-identity pairs")
  genuine, impostor = dist[same], np.sort(dist[~same])
  below = np.searchsorted(impostor, genuine, "left")
  nearer = (below + 0.5 * (np.searchsorted(impostor, genuine, "right") - below)) / len(impostor)
  return genuine, impostor, nearer


def identification_vs_gallery(embeddings: np.ndarray, labels: np.ndarray, gallery_sizes: Sequence[int],
                              threshold: float, *, repeats: int = 10, seed: int = 0) -> dict:
  """Top-1 identification and false accepts for galleries of K enrolled identities, one image each.

  For each K of `gallery_sizes` in order and each of `repeats` repetitions, one `np.random.default_rng(seed)`
  enrols K people (`verify.enrol`: one image each, drawn in its documented order); every other image is a probe,
  of an enrolled identity ('known') or not ('impostor'), answered by `verify.recognize`.

  Returns:
    `gallery_sizes`, and for each a list (one value per K, the mean over repetitions; `*_std` their spread):
    `top1` (known probes whose nearest gallery entry is their identity: closed-set rank-1), `top1_at_threshold`
    (that, and the entry within `threshold`), `false_accept_rate` (impostor probes with a gallery entry within
    `threshold`; NaN where K leaves no impostor), and `known_probes` / `impostor_probes` per repetition.

  Raises:
    ValueError: a K that is not an integer in [1, number of identities] (names it), repeats < 1, or
      embeddings and labels of different lengths.
  """
  embeddings = np.asarray(embeddings, np.float64)
  labels = np.asarray(labels)
  if embeddings.ndim != 2 or labels.shape != (len(embeddings),):
    raise ValueError(f"embeddings must be (n, d) and labels (n,), got {embeddings.shape} and {labels.shape}")
  if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
    raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
  ids = np.unique(labels)
  for k in gallery_sizes:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(ids):
      raise ValueError(f"gallery size K={k!r}: expected an integer in [1, {len(ids)}] (the number of identities)")
  rng = np.random.default_rng(seed)
  keys = ("top1", "top1_at_threshold", "false_accept_rate")
  out = {"gallery_sizes": [int(k) for k in gallery_sizes], "repeats": int(repeats), "threshold": float(threshold)}
  for key in keys + tuple(f"{k}_std" for k in keys) + ("known_probes", "impostor_probes"):
    out[key] = []
  for k in gallery_sizes:
    rows = []
    for _ in range(repeats):
      _, gallery, probes, known = enrol(rng, labels, k)
      nearest, dist = recognize(embeddings[gallery], labels[gallery], embeddings[probes], np.inf)
      correct = nearest == labels[probes]
      within = dist <= threshold
      rows.append((np.mean(correct[known]) if known.any() else np.nan,
                   np.mean((correct & within)[known]) if known.any() else np.nan,
                   np.mean(within[~known]) if (~known).any() else np.nan, int(known.sum()), int((~known).sum())))
    rows = np.array(rows, np.float64)
    for col, key in enumerate(keys):
      values = rows[:, col]
      out[key].append(float(np.mean(values)))
      out[f"{key}_std"].append(float(np.std(values)))
    out["known_probes"].append(int(rows[0, 3]))
    out["impostor_probes"].append(int(rows[0, 4]))
  return out


def pair_error_rates(embeddings: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
  """1:1 figures over every pair of distinct images: the per-comparison errors that 1:K compounds.

  Returns:
    `false_accept_rate` (different-identity pairs at or below `threshold`), `false_reject_rate` (same-identity
    pairs above it), `balanced_accuracy` (1 - their mean), `rank_error` (the chance that a random
    different-identity pair is closer than a random same-identity pair, ties counted half: 1 - AUC), and
    the pair counts.
  """
  genuine, impostor, nearer = _pair_distances(embeddings, labels)
  far, frr = float(np.mean(impostor <= threshold)), float(np.mean(genuine > threshold))
  return {"false_accept_rate": far, "false_reject_rate": frr, "balanced_accuracy": 1.0 - (far + frr) / 2,
          "rank_error": float(np.mean(nearer)),
          "same_pairs": int(len(genuine)), "different_pairs": int(len(impostor))}


def compounded(per_comparison_error: float, comparisons: np.ndarray) -> np.ndarray:
  """1 - (1 - e)^m: the chance that at least one of m independent comparisons errs, each with probability e."""
  return 1.0 - (1.0 - float(per_comparison_error)) ** np.asarray(comparisons, np.float64)


def predicted_top1(embeddings: np.ndarray, labels: np.ndarray, gallery_sizes: Sequence[int]) -> dict:
  """Closed-set top-1 predicted from 1:1 distances, as if a probe met K - 1 other people independently.

  With F(g) the fraction of different-identity pairs nearer than g (ties half), over the same-identity pair
  distances g: `independent` = (1 - mean F)^(K-1) = (1 - e)^(K-1), e = 1 - AUC (one error rate for every
  comparison); `given_genuine` = mean over g of (1 - F(g))^(K-1) (the probe's own distance shared by its K - 1
  comparisons, so errors fall on the same probes).
  """
  _, _, nearer = _pair_distances(embeddings, labels)
  others = np.asarray(gallery_sizes, np.float64) - 1
  return {"independent": ((1.0 - nearer.mean()) ** others).tolist(),
          "given_genuine": np.mean((1.0 - nearer[:, None]) ** others[None, :], axis=0).tolist()}
