"""Style-transfer figures: content | style | result, and the cost curves."""

from collections.abc import Sequence

import numpy as np
# A bare Figure needs no pyplot backend, so notebooks keep their inline plots.
from matplotlib.figure import Figure


def plot_triptych(content: np.ndarray, style: np.ndarray, result: np.ndarray, path: str,
                  title: str = "") -> None:
  """Saves a side-by-side figure of the content, style and generated images."""
  fig = Figure(figsize=(12, 4.4))
  axes = fig.subplots(1, 3)
  for ax, img, name in zip(axes, (content, style, result), ("content", "style", "result")):
    ax.imshow(np.clip(img, 0, 1))
    ax.set_title(name)
    ax.axis("off")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def plot_costs(history: Sequence[dict], path: str, keys: Sequence[str] = ("content", "style", "total")) -> None:
  """Saves the cost curves (log scale) against the optimizer step."""
  fig = Figure(figsize=(6, 4))
  ax = fig.subplots()
  steps = [h["step"] for h in history]
  for k in keys:
    ax.semilogy(steps, [max(h[k], 1e-30) for h in history], label=k)
  ax.set_xlabel("step")
  ax.set_ylabel("cost")
  ax.legend()
  ax.grid(True, which="both", alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
