"""Verification (is this the same person?) and one-shot recognition (who is this?) from embeddings.

Pairs are accepted as 'same' when their distance is at or below a threshold.
"""

import numpy as np


def make_pairs(labels: np.ndarray, num_pairs: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Half same-identity, half different-identity random pairs, shuffled.

  Returns:
    (i, j, same): example indices of each pair and whether they share an identity.
  """
  labels = np.asarray(labels)
  if num_pairs < 2 or num_pairs % 2:
    raise ValueError(f"num_pairs must be an even number >= 2, got {num_pairs}")
  ids, counts = np.unique(labels, return_counts=True)
  multi = ids[counts >= 2]
  if len(multi) < 1 or len(ids) < 2:
    raise ValueError(f"labels need an identity with two images and two identities, got {len(ids)} "
                     f"identities of which {len(multi)} have two or more images")
  rng = np.random.default_rng(seed)
  half = num_pairs // 2
  members = {int(i): np.flatnonzero(labels == i) for i in ids}
  same_i, same_j = zip(*(rng.choice(members[int(p)], 2, replace=False) for p in rng.choice(multi, half)))
  first = rng.integers(0, len(labels), half)
  # A different identity for the second image: shift by a non-zero number of identities.
  pos = np.searchsorted(ids, labels[first])
  other = ids[(pos + rng.integers(1, len(ids), half)) % len(ids)]
  second = np.array([rng.choice(members[int(o)]) for o in other])
  i = np.concatenate([same_i, first])
  j = np.concatenate([same_j, second])
  same = np.concatenate([np.ones(half, bool), np.zeros(half, bool)])
  order = rng.permutation(num_pairs)
  return i[order], j[order], same[order]


def read_pairs_file(path: str) -> tuple[list[tuple[str, int, str, int]], int]:
  """Reads an LFW-style pairs file: a header 'folds n' (or 'n'), then per fold n same then n different lines.

  Same lines are 'name i j', different ones 'name1 i name2 j' (image numbers from 1).

  Returns:
    ((name_a, number_a, name_b, number_b) per pair in file order, number of folds).
  """
  with open(path) as f:
    header, *lines = [line.split() for line in f if line.strip()]
  folds = int(header[0]) if len(header) == 2 else 1
  pairs = []
  for fields in lines:
    if len(fields) == 3:
      pairs.append((fields[0], int(fields[1]), fields[0], int(fields[2])))
    elif len(fields) == 4:
      pairs.append((fields[0], int(fields[1]), fields[2], int(fields[3])))
    else:
      raise ValueError(f"{path}: expected 'name i j' or 'name1 i name2 j', got {' '.join(fields)!r}")
  if len(pairs) % folds:
    raise ValueError(f"{path}: {len(pairs)} pairs do not split into the {folds} folds of its header")
  return pairs, folds


def pairs_from_names(pairs: list[tuple[str, int, str, int]], names: np.ndarray) -> tuple[np.ndarray, ...]:
  """Indices (i, j, same) of named pairs, image k of a person being its k-th example in `names` order."""
  members: dict[str, list[int]] = {}
  for index, name in enumerate(names):
    members.setdefault(str(name), []).append(index)
  idx = np.zeros((len(pairs), 2), np.int64)
  for row, (name_a, k_a, name_b, k_b) in enumerate(pairs):
    for col, (name, k) in enumerate(((name_a, k_a), (name_b, k_b))):
      if not 1 <= k <= len(members.get(name, ())):
        raise ValueError(f"pair {row}: {name!r} image {k} is not among the {len(members.get(name, ()))} "
                         f"images of that name")
      idx[row, col] = members[name][k - 1]
  same = np.array([a == b for a, _, b, _ in pairs])
  return idx[:, 0], idx[:, 1], same


def pair_distances(embeddings: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
  """Euclidean distance between embeddings[i] and embeddings[j], pair by pair."""
  return np.linalg.norm(np.asarray(embeddings)[i] - np.asarray(embeddings)[j], axis=-1)


def best_threshold(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
  """The threshold with the best accuracy of 'same iff distance <= threshold', and that accuracy.

  Candidates lie halfway between consecutive distinct distances (and below / above all).
  """
  distances, same = _check_scores(distances, same)
  order = np.argsort(distances, kind="stable")
  d, s = distances[order], same[order]
  accepted = np.arange(len(d) + 1)  # accept the m smallest distances
  true_accepts = np.concatenate([[0], np.cumsum(s)])
  true_rejects = np.sum(~s) - (accepted - true_accepts)
  accuracy = (true_accepts + true_rejects) / len(d)
  # Only cut between distinct values (ties are accepted together).
  cut_ok = np.concatenate([[True], d[1:] > d[:-1], [True]])
  accuracy = np.where(cut_ok, accuracy, -1.0)
  m = int(np.argmax(accuracy))
  lo = d[m - 1] if m > 0 else d[0] - 1.0
  hi = d[m] if m < len(d) else d[-1] + 1.0
  return float((lo + hi) / 2), float(accuracy[m])


def kfold_accuracy(distances: np.ndarray, same: np.ndarray, n_folds: int = 10) -> tuple[float, float, np.ndarray]:
  """Accuracy on each fold at the threshold chosen on the other folds (folds: consecutive chunks).

  Returns:
    (mean accuracy, its standard deviation, the threshold of each fold).
  """
  distances, same = _check_scores(distances, same)
  if not 2 <= n_folds <= len(distances):
    raise ValueError(f"n_folds must be in [2, {len(distances)}] (number of pairs), got {n_folds}")
  folds = np.array_split(np.arange(len(distances)), n_folds)
  accuracies, thresholds = [], []
  for k, test in enumerate(folds):
    train = np.concatenate([f for i, f in enumerate(folds) if i != k])
    t, _ = best_threshold(distances[train], same[train])
    accuracies.append(np.mean((distances[test] <= t) == same[test]))
    thresholds.append(t)
  return float(np.mean(accuracies)), float(np.std(accuracies)), np.array(thresholds)


def roc(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
  """(false-accept rates, true-accept rates, AUC) with smaller distance meaning 'same'."""
  # Imported here: `cnnjax.models` imports this package (for the pair head), and needs no scikit-learn.
  from sklearn.metrics import roc_auc_score, roc_curve  # pylint: disable=g-import-not-at-top

  distances, same = _check_scores(distances, same)
  far, tar, _ = roc_curve(same, -distances)
  return far, tar, float(roc_auc_score(same, -distances))


def val_at_far(distances: np.ndarray, same: np.ndarray, far: float = 1e-3) -> tuple[float, float, float]:
  """Validation rate at the largest threshold whose false-accept rate is at most `far` (FaceNet's VAL).

  Returns:
    (VAL = accepted same pairs / same pairs, the FAR reached, the threshold).
  """
  distances, same = _check_scores(distances, same)
  if not 0 <= far < 1:
    raise ValueError(f"far must be in [0, 1), got {far}")
  diff = np.sort(distances[~same])
  allowed = int(np.floor(far * len(diff) + 1e-9))
  # Accepting d < diff[allowed] lets in at most `allowed` different pairs (fewer where values tie).
  threshold = diff[allowed] if allowed < len(diff) else np.inf
  val = float(np.mean(distances[same] < threshold))
  return val, float(np.mean(diff < threshold)), float(threshold)


def verification_report(distances: np.ndarray, same: np.ndarray, n_folds: int = 10) -> dict[str, float]:
  """10-fold accuracy, AUC and VAL at FAR 1e-3 in one dict."""
  acc, std, _ = kfold_accuracy(distances, same, n_folds)
  _, _, auc = roc(distances, same)
  val, far, _ = val_at_far(distances, same, 1e-3)
  return {"verification_accuracy": acc, "verification_accuracy_std": std, "auc": auc,
          "val_at_far_1e-3": val, "achieved_far_1e-3": far}


def recognize(gallery: np.ndarray, gallery_ids: np.ndarray, probes: np.ndarray,
              threshold: float) -> tuple[np.ndarray, np.ndarray]:
  """Nearest enrolled person of each probe, or -1 ('unknown') when farther than `threshold`.

  Returns:
    (predicted ids, distance to the nearest gallery entry).
  """
  gallery, probes = np.asarray(gallery), np.asarray(probes)
  if gallery.ndim != 2 or probes.ndim != 2 or gallery.shape[1] != probes.shape[1]:
    raise ValueError(f"gallery and probes must be (n, d) with the same d, got {gallery.shape} and {probes.shape}")
  d = np.linalg.norm(probes[:, None, :] - gallery[None, :, :], axis=-1)
  nearest = np.argmin(d, axis=1)
  dist = d[np.arange(len(probes)), nearest]
  return np.where(dist <= threshold, np.asarray(gallery_ids)[nearest], -1), dist


def enrol(rng: np.random.Generator, labels: np.ndarray, count: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Enrols one image each of `count` people; every other image is a probe.

  Draws with `rng`, in this order: `rng.choice(sorted identities, count, replace=False)`, then for each enrolled
  identity in that order `rng.choice` of its image indices (ascending).

  Returns:
    (enrolled ids, gallery image indices, probe image indices, whether each probe's identity is enrolled).
  """
  labels = np.asarray(labels)
  enrolled = rng.choice(np.unique(labels), count, replace=False)
  gallery = np.array([rng.choice(np.flatnonzero(labels == i)) for i in enrolled])
  probes = np.setdiff1d(np.arange(len(labels)), gallery)
  return enrolled, gallery, probes, np.isin(labels[probes], enrolled)


def one_shot_recognition(embeddings: np.ndarray, labels: np.ndarray, *, threshold: float,
                         enrolled_fraction: float = 0.5, seed: int = 0) -> dict[str, float]:
  """Enrols one image of a share of the people; the rest are probes.

  Returns:
    recognition_top1 (probes of enrolled people answered with their identity),
    recognition_false_accept_rate (probes of people not enrolled answered with anybody),
    and the counts.
  """
  labels = np.asarray(labels)
  if not 0 < enrolled_fraction < 1:
    raise ValueError(f"enrolled_fraction must be in (0, 1), got {enrolled_fraction}")
  ids = np.unique(labels)
  count = max(1, int(round(enrolled_fraction * len(ids))))
  if count == len(ids):
    raise ValueError(f"need people who are not enrolled: {len(ids)} identities, fraction {enrolled_fraction}")
  enrolled, gallery, probes, known = enrol(np.random.default_rng(seed), labels, count)
  pred, _ = recognize(embeddings[gallery], labels[gallery], embeddings[probes], threshold)
  return {"recognition_top1": float(np.mean(pred[known] == labels[probes][known])),
          "recognition_false_accept_rate": float(np.mean(pred[~known] != -1)),
          "recognition_enrolled": int(len(enrolled)), "recognition_probes": int(len(probes))}


def _check_scores(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  distances, same = np.asarray(distances, np.float64), np.asarray(same, bool)
  if distances.ndim != 1 or distances.shape != same.shape:
    raise ValueError(f"distances and same must be 1-D of equal length, got {distances.shape} and {same.shape}")
  if same.all() or not same.any():
    raise ValueError(f"same must hold both same and different pairs, got {int(same.sum())} of {len(same)} same")
  return distances, same
