"""What ConvNets learn (issue 21, item 7): purity against counting, receptive fields against the formula."""

import numpy as np
import pytest

from cnnjax.viz import activations
from experiments.claims import what_convnets_learn
from experiments.configs import claims_what_convnets_learn


def test_purity_counts_the_most_common_class_of_each_unit():
  labels = np.array([0, 0, 1, 2, 2, 2])
  index = np.array([[0, 1, 2], [3, 4, 5], [0, 2, 3]])
  assert what_convnets_learn.purity(index, labels) == pytest.approx((2 / 3 + 1 + 1 / 3) / 3)


def test_chance_purity_of_one_class_and_of_distinct_classes():
  assert what_convnets_learn.chance_purity(np.zeros(50, int), 9) == 1.0
  assert what_convnets_learn.chance_purity(np.arange(50), 9) == pytest.approx(1 / 9)


def test_visible_part_is_the_window_inside_the_image():
  image = np.arange(10 * 12 * 1).reshape(10, 12, 1)
  rf = activations.ReceptiveField(size=8, jump=4, start=-3)
  for row, col in ((0, 0), (1, 2), (2, 2)):
    patch = activations.crop(image, rf, row, col)
    r0, c0 = -3 + 4 * row, -3 + 4 * col
    expected = image[max(r0, 0):r0 + 8, max(c0, 0):c0 + 8]
    np.testing.assert_array_equal(activations.visible_part(patch, rf, row, col, image.shape), expected)


def test_tiny_run_reports_every_layer(tmp_path):
  config = claims_what_convnets_learn.get_config()
  config.num_steps = config.eval_every = config.checkpoint_every = config.log_every = 2
  config.optimizer.warmup_steps = 0
  config.model_kwargs.update(widths=(8, 8, 16, 16, 16), hidden=16, width=0.5)  # the multiplier halves each
  config.claim.update(images=100, k=3, units_shown=2)
  results = what_convnets_learn.run(config, str(tmp_path))
  # VGG-11: 3x3 convs (+2 each, times the jump), 2x2/2 pools (+1 each, jump doubles) before each layer
  assert [results[f"{layer}/receptive_field"] for layer in config.claim.layers] == [3, 8, 26, 62, 134]
  assert [results[f"{layer}/units"] for layer in config.claim.layers] == [4, 4, 8, 8, 8]
  for layer in config.claim.layers:
    assert results["chance_purity"] <= 1.0 and 1 / 3 <= results[f"{layer}/purity"] <= 1.0
  assert (tmp_path / "plots" / "what_convnets_learn.png").exists()


def test_a_model_without_vgg_taps_is_refused(tmp_path):
  config = claims_what_convnets_learn.get_config()
  config.model, config.model_kwargs = "lenet5", {}
  with pytest.raises(ValueError, match="VGG family"):
    what_convnets_learn.run(config, str(tmp_path))
