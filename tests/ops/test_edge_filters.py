"""Edge filters: the course's 6x6 example, orientations, RGB luminance, errors."""

import numpy as np
import pytest
from scipy.signal import correlate2d

from cnnjax.ops import EDGE_FILTERS, apply_filter, edge_filter


def _step_image():
  return np.array([[10, 10, 10, 0, 0, 0]] * 6, np.float32)  # light left, dark right


def test_course_vertical_edge_example():
  out = apply_filter(_step_image(), edge_filter("vertical"))
  np.testing.assert_array_equal(out, [[0, 30, 30, 0]] * 4)
  # Dark-to-light: the mirrored image gives the negative response.
  np.testing.assert_array_equal(apply_filter(_step_image()[:, ::-1], edge_filter("vertical")),
                                [[0, -30, -30, 0]] * 4)


def test_filter_values_and_orientation():
  np.testing.assert_array_equal(edge_filter("vertical"), [[1, 0, -1]] * 3)
  np.testing.assert_array_equal(edge_filter("horizontal"), np.array([[1, 0, -1]] * 3).T)
  np.testing.assert_array_equal(edge_filter("sobel"), [[1, 0, -1], [2, 0, -2], [1, 0, -1]])
  np.testing.assert_array_equal(edge_filter("scharr"), [[3, 0, -3], [10, 0, -10], [3, 0, -3]])
  for name in EDGE_FILTERS:
    k = edge_filter(name)
    assert k.shape == (3, 3) and k.dtype == np.float32 and k.sum() == 0
  # The horizontal filter on the transposed image (light on top) responds like vertical.
  top = apply_filter(_step_image().T, edge_filter("horizontal"))
  np.testing.assert_array_equal(top, np.array([[0, 30, 30, 0]] * 4).T)
  # A vertical-edge filter does not respond to a horizontal edge.
  np.testing.assert_array_equal(apply_filter(_step_image().T, edge_filter("sobel")), 0)


def test_matches_scipy_correlation_and_same_padding():
  rng = np.random.default_rng(0)
  image = rng.random((9, 7)).astype(np.float32)
  for name in EDGE_FILTERS:
    k = edge_filter(name)
    np.testing.assert_allclose(apply_filter(image, k), correlate2d(image, k, mode="valid"),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(apply_filter(image, k, padding="same"),
                               correlate2d(image, k, mode="same"), rtol=1e-5, atol=1e-5)


def test_rgb_is_converted_to_luminance():
  rng = np.random.default_rng(1)
  rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
  gray = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
  np.testing.assert_allclose(apply_filter(rgb, edge_filter("sobel")),
                             correlate2d(gray, edge_filter("sobel"), mode="valid"), rtol=1e-4,
                             atol=1e-3)


def test_errors():
  with pytest.raises(ValueError, match="'laplace'.*vertical.*horizontal.*sobel.*scharr"):
    edge_filter("laplace")
  with pytest.raises(ValueError, match="image.shape"):
    apply_filter(np.zeros((4, 4, 2)), edge_filter("vertical"))
  with pytest.raises(ValueError, match="kernel.shape"):
    apply_filter(np.zeros((4, 4)), np.zeros((3, 3, 1)))
