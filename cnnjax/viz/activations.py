"""What deep ConvNets learn (Zeiler & Fergus 2014): the image patches that most excite each unit.

A unit is one channel of a layer. For every image the unit's strongest response
(over positions) is found, the images are ranked by it, and each of the top ones
is shown as the receptive-field crop around the responding position. Receptive
fields come from the conv/pool stack by the usual recurrence (per layer with
kernel k, stride s, padding p): `jump' = jump * s`, `size' = size + (k-1) jump`,
`start' = start - p * jump`; unit i of a layer sees input pixels
`[start + i jump, start + i jump + size)`.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import numpy as np
from matplotlib.figure import Figure

from cnnjax.models.intermediates import intermediates
from cnnjax.viz.filter_plots import plot_filters


class ReceptiveField(NamedTuple):
  size: int  # side of the input window one unit sees
  jump: int  # input pixels between neighbouring units (the cumulative stride)
  start: int  # input coordinate where unit 0's window starts (negative: it begins in the padding)


class TopPatches(NamedTuple):
  values: np.ndarray  # [U, k] strongest responses, decreasing
  image_index: np.ndarray  # [U, k] index of the image in the stream
  position: np.ndarray  # [U, k, 2] (row, col) of the responding unit
  patches: np.ndarray  # [U, k, size, size, C] receptive-field crops (zero outside the image)
  units: np.ndarray  # [U] channel indices


def receptive_fields(layers: Sequence[tuple[str, int, int, int]]) -> dict[str, ReceptiveField]:
  """Receptive field of every layer of a chain of `(name, kernel, stride, padding)` layers."""
  out, rf = {}, ReceptiveField(1, 1, 0)
  for name, k, s, p in layers:
    if k < 1 or s < 1 or p < 0:
      raise ValueError(f"layer {name!r}: kernel={k}, stride={s}, padding={p}; expected k, s >= 1 and p >= 0")
    rf = ReceptiveField(rf.size + (k - 1) * rf.jump, rf.jump * s, rf.start - p * rf.jump)
    out[name] = rf
  return out


def vgg_receptive_fields(stage_sizes: Sequence[int]) -> dict[str, ReceptiveField]:
  """Receptive fields of every VGG tap (`conv{b}_{i}`, `relu{b}_{i}`: 3x3/1 pad 1; `pool{b}`: 2x2/2)."""
  layers = []
  for b, n in enumerate(stage_sizes, 1):
    for i in range(1, n + 1):
      layers += [(f"conv{b}_{i}", 3, 1, 1), (f"relu{b}_{i}", 1, 1, 0)]
    layers.append((f"pool{b}", 2, 2, 0))
  return receptive_fields(layers)


def crop(image: np.ndarray, rf: ReceptiveField, row: int, col: int) -> np.ndarray:
  """The `[size, size, C]` window unit (row, col) sees; zeros where it leaves the image."""
  h, w = image.shape[:2]
  out = np.zeros((rf.size, rf.size, image.shape[2]), image.dtype)
  r0, c0 = rf.start + row * rf.jump, rf.start + col * rf.jump
  rs, cs = slice(max(r0, 0), min(r0 + rf.size, h)), slice(max(c0, 0), min(c0 + rf.size, w))
  if rs.start < rs.stop and cs.start < cs.stop:
    out[rs.start - r0:rs.stop - r0, cs.start - c0:cs.stop - c0] = image[rs, cs]
  return out


def top_activating_patches(features_fn: Callable[[np.ndarray], Mapping[str, Any]],
                           image_batches: Iterable[np.ndarray], fields: Mapping[str, ReceptiveField],
                           units: Mapping[str, Sequence[int]] | None = None, k: int = 9,
                           display: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, TopPatches]:
  """The `k` patches (one per image) that most activate each chosen unit of each layer.

  Args:
    features_fn: `images [N,H,W,C] -> {layer: [N,h,w,c]}` (e.g. `model_features_fn`).
    image_batches: iterable of image batches, in a fixed order (indices count across batches).
    fields: receptive field of each layer to search (its keys pick the layers).
    units: channel indices per layer; default the first 8 of each.
    k: patches per unit.
    display: maps a batch to what the patches are cut from (default: the batch itself).
  """
  if k < 1:
    raise ValueError(f"k={k}: expected >= 1")
  best: dict[str, list] = {}
  seen = 0
  for images in image_batches:
    images = np.asarray(images)
    shown = images if display is None else np.asarray(display(images))
    acts = features_fn(images)
    for layer, rf in fields.items():
      if layer not in acts:
        raise ValueError(f"layer {layer!r}: features_fn returned only {sorted(acts)}")
      a = np.asarray(acts[layer])
      n, h, w, c = a.shape
      chosen = np.arange(min(8, c)) if units is None or layer not in units else np.asarray(units[layer])
      if chosen.size and (chosen.min() < 0 or chosen.max() >= c):
        raise ValueError(f"units[{layer!r}]={chosen.tolist()}: expected channel indices in [0, {c})")
      flat = a[..., chosen].reshape(n, h * w, len(chosen))
      arg, val = flat.argmax(axis=1), flat.max(axis=1)  # [N, U]
      state = best.setdefault(layer, [chosen, [[] for _ in chosen]])
      for u in range(len(chosen)):
        # Kept entries carry their patch; new ones their batch row, cropped only if they make the top k.
        new = [(float(val[i, u]), seen + i, divmod(int(arg[i, u]), w), i) for i in range(n)]
        merged = sorted(state[1][u] + new, key=lambda t: -t[0])[:k]
        state[1][u] = [t if isinstance(t[3], np.ndarray) else (*t[:3], crop(shown[t[3]], rf, *t[2]))
                       for t in merged]
    seen += len(images)
  return {layer: TopPatches(
      values=np.array([[t[0] for t in lst] for lst in tops]),
      image_index=np.array([[t[1] for t in lst] for lst in tops]),
      position=np.array([[t[2] for t in lst] for lst in tops]),
      patches=np.array([[t[3] for t in lst] for lst in tops]),
      units=chosen) for layer, (chosen, tops) in best.items()}


def model_features_fn(model: nn.Module, variables: Mapping, layers: Sequence[str],
                      preprocess: Callable | None = None) -> Callable[[np.ndarray], dict]:
  """`images -> {layer: activation}`, jitted (`cnnjax.models.intermediates` names: submodule paths 'a/b')."""
  layers = list(layers)
  return jax.jit(lambda images: intermediates(model, variables, images if preprocess is None else preprocess(images),
                                              layers))


def what_units_see(model: nn.Module, variables: Mapping, source: Sequence[Mapping], fields: Mapping[str, ReceptiveField],
                   *, units: Mapping[str, Sequence[int]] | None = None, k: int = 9, batch_size: int = 64,
                   preprocess: Callable | None = None, plots_dir: str | None = None) -> dict[str, TopPatches]:
  """Top-`k` patches of chosen units of a trained classifier over a random-access data source.

  Args:
    model, variables: the classifier (`model.apply(variables, x, train=False)`).
    source: records with a uint8 `'image'` `[H, W, C]` (a `cnnjax.data.sources.load` split).
    fields: receptive field per layer (submodule path), e.g. from `receptive_fields`.
    preprocess: float images in [0, 1] -> model input (the training normalisation).
    plots_dir: when given, writes `top_patches_<layer>.png` per layer and
      `first_layer_filters.png` (the first 4-D kernel of the parameters).
  """
  features = model_features_fn(model, variables, list(fields), preprocess)
  batches = (np.stack([np.asarray(source[i]["image"], np.float32) / 255.0
                       for i in range(j, min(j + batch_size, len(source)))])
             for j in range(0, len(source), batch_size))
  top = top_activating_patches(features, batches, fields, units, k)
  if plots_dir:
    for layer, t in top.items():
      plot_top_patches(t, layer, f"{plots_dir}/top_patches_{layer.replace('/', '_')}.png")
    kernel = next(v for v in jax.tree_util.tree_leaves(variables["params"]) if np.ndim(v) == 4)
    plot_first_layer_filters(kernel, f"{plots_dir}/first_layer_filters.png")
  return top


def plot_top_patches(top: TopPatches, layer: str, path: str | None = None) -> Figure:
  """One row per unit, its top patches left to right (each min-max scaled)."""
  u, k = top.values.shape
  fig = Figure(figsize=(0.9 * k + 0.8, 0.9 * u + 0.4), layout="constrained")
  axes = fig.subplots(u, k, squeeze=False)
  for r in range(u):
    for c in range(k):
      ax, p = axes[r, c], top.patches[r, c].astype(np.float32)
      p = (p - p.min()) / max(float(p.max() - p.min()), 1e-12)
      ax.imshow(p[..., 0] if p.shape[-1] == 1 else p, cmap="gray")
      ax.set_xticks([])
      ax.set_yticks([])
    axes[r, 0].set_ylabel(f"unit {top.units[r]}", fontsize=7)
  fig.suptitle(f"{layer}: top-{k} patches per unit")
  if path:
    fig.savefig(path, dpi=100)
  return fig


def visible_part(patch: np.ndarray, rf: ReceptiveField, row: int, col: int, image_shape: Sequence[int]) -> np.ndarray:
  """The part of a `crop` that lies inside the image (deep units' windows reach far into the padding)."""
  (r0, c0), (h, w) = (rf.start + row * rf.jump, rf.start + col * rf.jump), image_shape[:2]
  return patch[max(-r0, 0):min(rf.size, h - r0), max(-c0, 0):min(rf.size, w - c0)]


def plot_layers_top_patches(top: Mapping[str, TopPatches], fields: Mapping[str, ReceptiveField],
                            image_shape: Sequence[int], shown: Mapping[str, Sequence[int]],
                            notes: Mapping[str, Any] | None = None, path: str | None = None) -> Figure:
  """A row per layer, a block per shown unit: its top patches (in-image parts, each min-max scaled) in a square.

  `notes` may hold `<layer>/receptive_field` and `<layer>/purity`, written under each layer's name.
  """
  layers, notes = list(shown), notes or {}
  cols = max(len(units) for units in shown.values())
  k = next(iter(top.values())).values.shape[1]
  side = int(np.ceil(np.sqrt(k)))
  fig = Figure(figsize=(1.25 * cols * side / 3 + 1.2, 1.3 * len(layers) * side / 3), layout="constrained")
  rows = fig.subfigures(len(layers), 1, squeeze=False)[:, 0]
  for sub, layer in zip(rows, layers):
    t, rf = top[layer], fields[layer]
    label = layer + "".join(f"\n{name} {notes[f'{layer}/{key}']:{fmt}}" for key, name, fmt in
                            (("receptive_field", "RF", "d"), ("purity", "purity", ".2f")) if f"{layer}/{key}" in notes)
    sub.supylabel(label, fontsize=8)
    axes = sub.subplots(side, cols * side, squeeze=False, gridspec_kw={"wspace": 0.05, "hspace": 0.05})
    for ax in axes.flat:
      ax.set_axis_off()
    for u, unit in enumerate(shown[layer]):
      r = int(np.flatnonzero(t.units == unit)[0])
      for j in range(k):
        p = visible_part(t.patches[r, j].astype(np.float32), rf, *t.position[r, j], image_shape)
        p = (p - p.min()) / max(float(p.max() - p.min()), 1e-12)
        ax = axes[j // side, u * side + j % side]
        ax.imshow(p[..., 0] if p.shape[-1] == 1 else p, cmap="gray")
      axes[0, u * side + side // 2].set_title(f"unit {unit}", fontsize=7)
  if path:
    fig.savefig(path, dpi=100)
  return fig


def plot_first_layer_filters(kernel: np.ndarray, path: str | None = None, title: str = "first-layer filters") -> Figure:
  """The first conv layer's filters (HWIO kernel), RGB when it reads 3 channels."""
  fig = plot_filters(np.asarray(kernel), title=title)
  if path:
    fig.savefig(path, dpi=100)
  return fig
