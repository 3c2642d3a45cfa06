"""Per-channel statistics for normalisation (`cnnjax.data.prepare`) from image arrays."""

import numpy as np

from cnnjax.data import prepare


def test_channel_stats_are_the_per_channel_mean_and_std_in_unit_range():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 4, 3, 2), dtype=np.uint8)
  images[..., 1] = 255  # a constant channel: its std is floored at 1e-3
  mean, std = prepare.image_channel_stats(images)
  unit = images.astype(np.float64) / 255
  np.testing.assert_allclose(mean, [unit[..., 0].mean(), 1.0], rtol=1e-6)
  np.testing.assert_allclose(std, [unit[..., 0].std(), 1e-3], rtol=1e-6)
