"""Sliding windows: the convolutional implementation equals cropping every window; crops and detections."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.detection import sliding_window as sw

KW = dict(features=(4, 8), kernel=3, hidden=(16, 12))
WINDOW = 18  # 18 -conv3-> 16 -pool-> 8 -conv3-> 6 -pool-> 3: first FC becomes a 3x3 conv


@pytest.fixture(scope="module")
def trained_like():
  model = sw.WindowClassifier(4, **KW)
  @jax.jit
  def init():
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, WINDOW, WINDOW, 3)))
    # Random, non-trivial biases too, so a mismatch in any layer shows.
    return jax.tree_util.tree_map(lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(1), p.shape), variables)

  return model, init()


def test_fc_to_conv_gives_every_window_the_naive_prediction(trained_like):
  model, variables = trained_like
  images = jax.random.uniform(jax.random.PRNGKey(2), (2, 30, 27, 3))
  naive = jax.jit(lambda v, x: sw.naive_window_scores(model, v, x, WINDOW, 4))(variables, images)
  conv_model = sw.ConvWindowClassifier(4, window=WINDOW, **KW)
  conv_params = sw.fc_to_conv(variables["params"], WINDOW, KW["features"], KW["kernel"])
  conv = jax.jit(conv_model.apply)({"params": conv_params}, images)
  np.testing.assert_allclose(sw.conv_window_scores(model, variables, images, WINDOW), conv, atol=1e-6)
  assert naive.shape == conv.shape == (2, 4, 3, 4)  # rows (30-18)//4+1, cols (27-18)//4+1
  np.testing.assert_allclose(conv, naive, atol=1e-5)
  # The naive detector is the classifier on a hand-made crop.
  crop = images[1, 8:8 + WINDOW, 4:4 + WINDOW]
  np.testing.assert_allclose(naive[1, 2, 1], jax.jit(model.apply)(variables, crop[None])[0], atol=1e-5)
  assert conv_params["fc0"]["kernel"].shape == (3, 3, 8, 16) and conv_params["fc1"]["kernel"].shape == (1, 1, 16, 12)


def test_window_geometry_errors():
  assert sw.feature_size(32, (16, 32), 5) == 5
  with pytest.raises(ValueError, match="window=16"):
    sw.feature_size(16, (4, 8), 3)
  with pytest.raises(ValueError, match="smaller than the window"):
    sw.window_grid(10, 40, 18, 4)


def test_window_detections_pick_object_windows():
  logits = np.full((3, 3, 4), -5.0, np.float32)
  logits[..., 0] = 5.0  # background everywhere ...
  logits[1, 2] = [-5, -5, 6, -5]  # ... except class index 1 (after dropping background) at row 1, col 2
  det = jax.jit(lambda x: sw.window_detections(x, 8, 4, (16, 16), score_threshold=0.5, iou_threshold=0.5,
                                               max_detections=3))(jnp.asarray(logits))
  assert np.asarray(det["valid"]).tolist() == [True, False, False]
  assert int(det["classes"][0]) == 1
  np.testing.assert_allclose(det["boxes"][0], [8 / 16, 4 / 16, 16 / 16, 12 / 16])


def test_window_crops_are_labelled_and_sized():
  rng = np.random.default_rng(0)
  image = (rng.uniform(0, 255, (48, 48, 3))).astype(np.uint8)
  source = [{"image": image, "boxes": np.array([[0.1, 0.1, 0.4, 0.5]], np.float32), "classes": np.array([2])}]
  crops = sw.make_window_crops(source, 16, 40, seed=0)
  labels = np.array([c["label"] for c in crops])
  assert len(crops) == 40 and set(labels.tolist()) == {0, 3}
  assert all(c["image"].shape == (16, 16, 3) and c["image"].dtype == np.uint8 for c in crops)
