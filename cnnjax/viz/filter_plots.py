"""Plots of a bank of conv filters and of feature maps (matplotlib, no pyplot state)."""

import math

from matplotlib.figure import Figure
import numpy as np


def _grid(n: int, ncols: int, panel_size: float, title: str | None):
  """A Figure with n image axes (ticks off) on a grid of at most ncols columns."""
  if n < 1:
    raise ValueError(f"n={n}: expected at least one panel to plot")
  if ncols < 1:
    raise ValueError(f"ncols={ncols}: expected a positive int")
  ncols = min(ncols, n)
  nrows = math.ceil(n / ncols)
  fig = Figure(figsize=(panel_size * ncols, panel_size * nrows + (0.4 if title else 0)),
               layout="constrained")
  axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
  for ax in axes:
    ax.set_axis_off()
  if title:
    fig.suptitle(title)
  return fig, axes[:n]


def plot_filters(kernels, *, ncols: int = 8, title: str | None = None, cmap: str = "RdBu_r",
                 panel_size: float = 1.2) -> Figure:
  """One panel per filter of a bank.

  Args:
    kernels: (f_H, f_W) for one filter or (f_H, f_W, C_in, C_out) HWIO. With C_in == 3
      each filter is shown as an RGB image (min-max scaled per filter); otherwise its
      mean over input channels is shown with a colour map centred on zero, so the
      sign of each weight is visible.
    ncols: panels per row.
    title: optional figure title.
    cmap: colour map for single-channel filters.
    panel_size: inches per panel.
  """
  k = np.asarray(kernels, np.float32)
  if k.ndim == 2:
    k = k[:, :, None, None]
  if k.ndim != 4:
    raise ValueError(f"kernels.shape={k.shape}: expected (f_H, f_W) or (f_H, f_W, C_in, C_out)")
  fig, axes = _grid(k.shape[3], ncols, panel_size, title)
  for i, ax in enumerate(axes):
    f = k[:, :, :, i]
    if f.shape[2] == 3:
      ax.imshow((f - f.min()) / max(float(f.max() - f.min()), 1e-12))
    else:
      f = f.mean(axis=2)
      bound = max(float(np.abs(f).max()), 1e-12)
      ax.imshow(f, cmap=cmap, vmin=-bound, vmax=bound)
    ax.set_title(str(i), fontsize=7)
  return fig


def plot_feature_maps(maps, *, ncols: int = 8, max_maps: int | None = None,
                      title: str | None = None, cmap: str = "viridis",
                      panel_size: float = 1.2) -> Figure:
  """One panel per channel of a feature map.

  Args:
    maps: (H, W, C) or (1, H, W, C) activations of one image.
    ncols: panels per row.
    max_maps: show only the first max_maps channels.
    title: optional figure title.
    cmap: colour map (each panel scaled to its own range).
    panel_size: inches per panel.
  """
  m = np.asarray(maps, np.float32)
  if m.ndim == 4 and m.shape[0] == 1:
    m = m[0]
  if m.ndim != 3:
    raise ValueError(f"maps.shape={m.shape}: expected (H, W, C) or (1, H, W, C)")
  n = m.shape[2] if max_maps is None else min(max_maps, m.shape[2])
  fig, axes = _grid(n, ncols, panel_size, title)
  for i, ax in enumerate(axes):
    ax.imshow(m[:, :, i], cmap=cmap)
    ax.set_title(str(i), fontsize=7)
  return fig
