"""Gallery of one image through every augmentation op (matplotlib, no pyplot state)."""

from collections.abc import Mapping, Sequence
import math
from typing import Any

import jax
from matplotlib.figure import Figure
import numpy as np

from cnnjax.data import augment


def gallery_spec(image: np.ndarray) -> list[dict[str, Any]]:
  """Every op once, with strengths large enough to see; PCA statistics come from the image itself."""
  h = image.shape[0]
  eigvals, eigvecs = augment.pca_colour_stats(np.asarray(image)[None])
  return [
      {"name": "flip_lr", "p": 1.0},
      {"name": "flip_ud", "p": 1.0},
      {"name": "random_crop", "pad": max(1, h // 8)},
      {"name": "rotate", "max_degrees": 30.0, "min_degrees": 15.0},
      {"name": "shear", "max_degrees": 20.0, "min_degrees": 10.0},
      {"name": "warp", "strength": max(1.0, h / 16), "grid": 4},
      {"name": "colour_shift", "max_offset": 0.2, "max_scale": 0.3},
      {"name": "pca_colour", "eigvals": eigvals.tolist(), "eigvecs": eigvecs.tolist(), "std": 1.0},
  ]


def plot_augmentations(image: np.ndarray, spec: Sequence[str | Mapping[str, Any]] | None = None, *,
                       seed: int = 0, ncols: int = 5, panel_size: float = 1.8,
                       title: str | None = None) -> Figure:
  """The original image, then one panel per op of `spec`, then all of them composed.

  Args:
    image: (H, W, C) uint8, or float in [0, 1]; C is 1 or 3.
    spec: augmentation config list as for `augment.build`; default `gallery_spec(image)`.
    seed: seed of the augmentation key (same seed, same figure).
    ncols: panels per row.
    panel_size: inches per panel.
    title: optional figure title.
  """
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"image.shape={image.shape}: expected (H, W, C) with C in (1, 3)")
  spec = list(gallery_spec(image) if spec is None else spec)
  key = jax.random.key(seed)
  panels = [("original", augment.build([])(key, image[None])[0])]
  for item in spec:
    name = item if isinstance(item, str) else item["name"]
    panels.append((name, augment.build([item])(key, image[None])[0]))
  panels.append(("composed", augment.build(spec)(key, image[None])[0]))

  ncols = min(ncols, len(panels))
  nrows = math.ceil(len(panels) / ncols)
  fig = Figure(figsize=(panel_size * ncols, panel_size * nrows + (0.4 if title else 0)), layout="constrained")
  axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
  for ax in axes:
    ax.set_axis_off()
  for ax, (name, panel) in zip(axes, panels):
    # Ops do not clip (colour shifts may leave [0, 1]); clip only for display.
    panel = np.clip(np.asarray(panel), 0.0, 1.0)
    if panel.shape[-1] == 1:
      ax.imshow(panel[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
      ax.imshow(panel)
    ax.set_title(name, fontsize=8)
  if title:
    fig.suptitle(title)
  return fig
