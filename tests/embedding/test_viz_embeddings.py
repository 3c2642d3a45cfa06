"""Embedding plots: 2-D projections and the figures the experiment saves."""

import numpy as np
import pytest

from cnnjax.viz import embeddings as viz


def _pairwise(x):
  return np.linalg.norm(x[:, None] - x[None], axis=-1)


def test_pca_keeps_distances_of_points_on_a_plane():
  rng = np.random.default_rng(0)
  flat = rng.normal(size=(30, 2))
  basis = np.linalg.qr(rng.normal(size=(8, 2)))[0]  # orthonormal 2-D plane in 8-D
  points = flat @ basis.T + 3.0
  np.testing.assert_allclose(_pairwise(viz.project_2d(points, "pca")), _pairwise(flat), atol=1e-8)


def test_tsne_projection_and_bad_input():
  points = np.random.default_rng(1).normal(size=(20, 5))
  out = viz.project_2d(points, "tsne")
  assert out.shape == (20, 2) and np.all(np.isfinite(out))
  with pytest.raises(ValueError, match="method must be 'pca' or 'tsne'"):
    viz.project_2d(points, "umap")
  with pytest.raises(ValueError, match="embeddings must be"):
    viz.project_2d(points[:2], "pca")


def test_figures():
  rng = np.random.default_rng(2)
  labels = np.repeat(np.arange(15), 3)
  fig = viz.plot_projection(rng.normal(size=(45, 4)), labels, max_identities=12)
  assert len(fig.axes[0].collections) == 12  # one scatter per plotted identity
  d = rng.uniform(size=50)
  same = np.arange(50) % 2 == 0
  assert len(viz.plot_distance_histograms(d, same, 0.5).axes[0].patches) == 2 * 49
  assert viz.plot_roc(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.8, 1.0]), 0.9).axes[0].get_xscale() == "log"
