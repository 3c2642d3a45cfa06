"""The synthetic_faces generator at small size (the full TFDS build runs in tests/experiments/test_embedding.py)."""

import numpy as np

from cnnjax.data.builders import synthetic_faces as sf


def test_images_labels_and_determinism():
  images, labels = sf.make_faces(num_identities=5, images_per_identity=3, size=24, seed=1)
  assert images.shape == (15, 24, 24, 3) and images.dtype == np.uint8
  np.testing.assert_array_equal(labels, np.repeat(np.arange(5), 3))
  again, _ = sf.make_faces(num_identities=5, images_per_identity=3, size=24, seed=1)
  np.testing.assert_array_equal(images, again)
  other, _ = sf.make_faces(num_identities=5, images_per_identity=3, size=24, seed=2)
  assert not np.array_equal(images, other)
  assert images.std() > 20  # drawn content, not a blank canvas


def test_identity_lives_in_the_traits():
  rng = np.random.default_rng(0)
  traits = sf.identity_traits(2, rng)
  nuis = sf.image_nuisances(1, rng)
  nuis["noise"][:] = 0
  nuis["occ_size"][:] = 0
  # One set of nuisances, two people: the pictures differ; the same person twice: identical.
  pair = {k: v[[0, 1]] for k, v in traits.items()}
  same_nuis = {k: np.repeat(v, 2, axis=0) for k, v in nuis.items()}
  two_people = sf.render(pair, same_nuis, 32, rng)
  assert np.abs(two_people[0].astype(int) - two_people[1]).mean() > 2
  twice = sf.render({k: v[[0, 0]] for k, v in traits.items()}, same_nuis, 32, rng)
  np.testing.assert_array_equal(twice[0], twice[1])


def test_trait_ranges_and_binary_shares():
  traits = sf.identity_traits(2000, np.random.default_rng(0))
  for name, lo, hi in sf._TRAIT_RANGES:  # pylint: disable=protected-access
    if traits[name].dtype != bool:
      assert lo <= traits[name].min() and traits[name].max() <= hi, name
  for flag in ("beard", "moustache", "glasses"):
    assert traits[flag].dtype == bool and 0.15 < traits[flag].mean() < 0.25
  for colour in ("skin", "hair", "iris", "lip"):
    assert traits[colour].shape == (2000, 3) and 0 <= traits[colour].min() and traits[colour].max() <= 1.1


def test_splits_are_identity_disjoint_and_cover_all():
  ranges = sorted(sf.SPLIT_IDENTITIES.values())
  assert ranges[0][0] == 0 and ranges[-1][1] == sf.NUM_IDENTITIES
  assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
  assert sf.NUM_IDENTITIES >= 500 and sf.IMAGES_PER_IDENTITY >= 10
