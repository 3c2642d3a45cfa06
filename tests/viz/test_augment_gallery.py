"""The augmentation gallery: one panel per op, showing what the op does to the image."""

import numpy as np
import pytest

from cnnjax.viz.augment_gallery import gallery_spec, plot_augmentations


def test_gallery_has_a_panel_per_op_and_shows_their_outputs(tmp_path):
  image = np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8)
  spec = [{"name": "flip_lr", "p": 1.0}, {"name": "rotate", "min_degrees": 90.0, "max_degrees": 90.0}]
  fig = plot_augmentations(image, spec, ncols=2, title="gallery")
  shown = [ax for ax in fig.axes if ax.images]
  assert [ax.get_title() for ax in shown] == ["original", "flip_lr", "rotate", "composed"]
  panels = [np.asarray(ax.images[0].get_array()) for ax in shown]
  np.testing.assert_allclose(panels[0], image / 255.0, atol=1e-6)
  np.testing.assert_allclose(panels[1], image[:, ::-1] / 255.0, atol=1e-6)
  np.testing.assert_allclose(panels[2], np.rot90(image) / 255.0, atol=1e-5)
  np.testing.assert_allclose(panels[3], np.rot90(image[:, ::-1]) / 255.0, atol=1e-5)
  fig.savefig(tmp_path / "gallery.png")
  assert (tmp_path / "gallery.png").stat().st_size > 0


def test_default_gallery_covers_every_op_and_grayscale_images_plot():
  image = np.random.default_rng(1).random((16, 16, 1)).astype(np.float32)
  from cnnjax.data.augment import OPS  # pylint: disable=g-import-not-at-top
  assert [item["name"] for item in gallery_spec(image)] == list(OPS)
  fig = plot_augmentations(image, [{"name": "flip_ud", "p": 1.0}])
  panels = [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]
  np.testing.assert_allclose(panels[1], image[::-1, :, 0], atol=1e-6)
  with pytest.raises(ValueError, match="expected \\(H, W, C\\)"):
    plot_augmentations(image[..., 0])
