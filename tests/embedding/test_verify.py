"""Verification and recognition metrics on constructed distances whose answers are known."""

import numpy as np
import pytest

from cnnjax.embedding import verify


def _brute_kfold(d, same, n_folds):
  folds = np.array_split(np.arange(len(d)), n_folds)
  accs = []
  for k, test in enumerate(folds):
    train = np.setdiff1d(np.arange(len(d)), test)
    best_t, best_acc = -np.inf, -1.0
    u = np.unique(d[train])  # candidate thresholds halfway between consecutive distinct distances
    for t in np.concatenate([[u[0] - 1], (u[1:] + u[:-1]) / 2, [u[-1] + 1]]):
      acc = np.mean((d[train] <= t) == same[train])
      if acc > best_acc:
        best_t, best_acc = t, acc
    accs.append(np.mean((d[test] <= best_t) == same[test]))
  return np.mean(accs)


def test_separable_distances_give_perfect_scores():
  d = np.array([0.1, 0.2, 0.3, 0.5, 0.6, 0.7])
  same = np.array([1, 1, 1, 0, 0, 0], bool)
  t, acc = verify.best_threshold(d, same)
  assert acc == 1.0 and 0.3 < t < 0.5
  report = verify.verification_report(np.tile(d, 5), np.tile(same, 5), n_folds=5)
  assert report["verification_accuracy"] == 1.0 and report["auc"] == 1.0
  assert report["val_at_far_1e-3"] == 1.0 and report["achieved_far_1e-3"] == 0.0


def test_kfold_accuracy_matches_brute_force_on_overlapping_distances():
  rng = np.random.default_rng(0)
  same = rng.uniform(size=400) < 0.5
  d = np.where(same, rng.normal(1.0, 0.4, 400), rng.normal(1.8, 0.4, 400))
  acc, std, thresholds = verify.kfold_accuracy(d, same, 10)
  np.testing.assert_allclose(acc, _brute_kfold(d, same, 10))
  assert 0.75 < acc < 0.95 and std > 0 and thresholds.shape == (10,)


def test_auc_counts_ordered_pairs():
  # Same pairs at 1 and 3, different at 2 and 4: 3 of 4 (same, different) pairs are ordered right.
  far, tar, auc = verify.roc(np.array([1.0, 3.0, 2.0, 4.0]), np.array([1, 1, 0, 0], bool))
  assert auc == pytest.approx(0.75)
  assert far[0] == 0 and far[-1] == 1 and tar[-1] == 1


def test_val_at_far():
  diff = np.linspace(1.0, 2.0, 1000)
  same_d = np.linspace(0.0, 2.0, 100)
  d = np.concatenate([same_d, diff])
  same = np.concatenate([np.ones(100, bool), np.zeros(1000, bool)])
  # FAR 1e-3 of 1,000 different pairs admits one of them: accept d < diff[1] = 1.001.
  val, far, threshold = verify.val_at_far(d, same, 1e-3)
  assert threshold == pytest.approx(diff[1])
  assert val == pytest.approx(np.mean(same_d < diff[1])) and val == pytest.approx(0.5)
  assert far == pytest.approx(1e-3)
  val0, far0, _ = verify.val_at_far(d, same, 0.0)
  assert far0 == 0 and val0 == pytest.approx(np.mean(same_d < 1.0))


def test_make_pairs_balanced_and_labelled():
  labels = np.repeat(np.arange(7), 4)
  i, j, same = verify.make_pairs(labels, 200, seed=3)
  assert len(i) == 200 and same.sum() == 100
  np.testing.assert_array_equal(labels[i] == labels[j], same)
  assert np.all(i != j)
  np.testing.assert_array_equal(verify.make_pairs(labels, 200, seed=3)[0], i)


def test_recognition_on_constructed_embeddings():
  # Person p sits at 10 * unit vector p; images jitter by at most 0.1.
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(6), 3)
  e = 10 * np.eye(6)[labels] + rng.uniform(-0.05, 0.05, (18, 6))
  ids, dist = verify.recognize(e[[0, 3]], labels[[0, 3]], e[[1, 4, 7]], threshold=1.0)
  np.testing.assert_array_equal(ids, [0, 1, -1])
  assert dist[0] < 1.0 and dist[2] > 10
  res = verify.one_shot_recognition(e, labels, threshold=1.0, enrolled_fraction=0.5, seed=0)
  assert res["recognition_top1"] == 1.0 and res["recognition_false_accept_rate"] == 0.0
  assert res["recognition_enrolled"] == 3 and res["recognition_probes"] == 15
  lax = verify.one_shot_recognition(e, labels, threshold=100.0, enrolled_fraction=0.5, seed=0)
  assert lax["recognition_false_accept_rate"] == 1.0


def test_bad_input_raises():
  with pytest.raises(ValueError, match="both same and different"):
    verify.roc(np.ones(3), np.ones(3, bool))
  with pytest.raises(ValueError, match="equal length"):
    verify.kfold_accuracy(np.ones(4), np.ones(3, bool))
  with pytest.raises(ValueError, match="num_pairs must be an even"):
    verify.make_pairs(np.arange(4), 3)
  with pytest.raises(ValueError, match="n_folds must be"):
    verify.kfold_accuracy(np.arange(4.0), np.array([1, 0, 1, 0], bool), 10)
  with pytest.raises(ValueError, match="far must be"):
    verify.val_at_far(np.arange(4.0), np.array([1, 0, 1, 0], bool), 1.5)


def test_pairs_file_protocol(tmp_path):
  path = tmp_path / "pairs.txt"
  path.write_text("2\t2\nAnn\t1\t2\nBob\t2\t3\nAnn\t1\tBob\t3\nBob\t1\tCy\t1\n"
                  "Cy\t1\t2\nAnn\t2\t3\nCy\t2\tAnn\t1\nAnn\t3\tBob\t1\n")
  pairs, folds = verify.read_pairs_file(str(path))
  assert folds == 2 and len(pairs) == 8
  assert pairs[0] == ("Ann", 1, "Ann", 2) and pairs[2] == ("Ann", 1, "Bob", 3)
  names = np.array(["Bob", "Ann", "Cy", "Bob", "Ann", "Bob", "Cy", "Ann"])
  i, j, same = verify.pairs_from_names(pairs, names)
  # Ann is at 1, 4, 7; Bob at 0, 3, 5; Cy at 2, 6 (k-th image = k-th occurrence).
  np.testing.assert_array_equal(i, [1, 3, 1, 0, 2, 4, 6, 7])
  np.testing.assert_array_equal(j, [4, 5, 5, 2, 6, 7, 1, 0])
  np.testing.assert_array_equal(same, [1, 1, 0, 0, 1, 1, 0, 0])
  with pytest.raises(ValueError, match="'Cy' image 3 is not among the 2"):
    verify.pairs_from_names([("Cy", 3, "Cy", 1)], names)
  path.write_text("1\nAnn 1\n")
  with pytest.raises(ValueError, match="expected 'name i j'"):
    verify.read_pairs_file(str(path))
