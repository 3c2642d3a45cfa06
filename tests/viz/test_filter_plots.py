"""Filter-bank and feature-map plots: panel counts, RGB vs signed display, errors."""

from matplotlib.figure import Figure
import numpy as np
import pytest

from cnnjax.ops import edge_filter
from cnnjax.viz.filter_plots import plot_feature_maps, plot_filters


def _images(fig):
  return [ax.images[0] for ax in fig.axes if ax.images]


def test_plot_filters_bank_and_single():
  rng = np.random.default_rng(0)
  fig = plot_filters(rng.standard_normal((5, 5, 3, 10)), ncols=4, title="conv1")
  assert isinstance(fig, Figure) and len(fig.axes) == 12  # 3 rows x 4, two blank
  images = _images(fig)
  assert len(images) == 10 and images[0].get_array().shape == (5, 5, 3)
  assert 0 <= images[0].get_array().min() and images[0].get_array().max() <= 1
  single = _images(plot_filters(edge_filter("vertical")))[0]
  np.testing.assert_array_equal(single.get_array(), edge_filter("vertical"))
  assert single.get_clim() == (-1, 1)  # centred on zero: the sign is visible
  fig.savefig(__import__("io").BytesIO(), format="png")


def test_plot_feature_maps():
  maps = np.random.default_rng(1).random((1, 6, 7, 5))
  fig = plot_feature_maps(maps, ncols=8, max_maps=3)
  images = _images(fig)
  assert len(images) == 3
  np.testing.assert_allclose(images[2].get_array(), maps[0, :, :, 2], rtol=1e-6)


@pytest.mark.parametrize("call,match", [
    (lambda: plot_filters(np.zeros((3, 3, 2))), "kernels.shape"),
    (lambda: plot_feature_maps(np.zeros((2, 4, 4, 3))), "maps.shape"),
    (lambda: plot_feature_maps(np.zeros((4, 4, 3)), ncols=0), "ncols"),
])
def test_errors(call, match):
  with pytest.raises(ValueError, match=match):
    call()
