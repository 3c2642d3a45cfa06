"""Region proposals and the R-CNN family's box operations.

`selective_search` segments an image with scikit-image's `felzenszwalb`, then
greedily merges adjacent regions by colour, size and fill similarity (Uijlings
et al. 2013), proposing the box of every region of the hierarchy.
`crop_and_resize` warps proposals to a fixed size (R-CNN); `roi_max_pool`
max-pools each proposal's cells of a feature map (Fast R-CNN). Both are
jit-able for a fixed number of proposals.
"""

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

_BINS = 10  # colour histogram bins per channel


def _region_stats(image: np.ndarray, labels: np.ndarray) -> dict[int, dict]:
  n = labels.max() + 1
  flat = labels.ravel()
  sizes = np.bincount(flat, minlength=n)
  ys, xs = np.indices(labels.shape)
  boxes = np.stack([np.full(n, 1e9), np.full(n, 1e9), np.full(n, -1.0), np.full(n, -1.0)], 1)
  np.minimum.at(boxes[:, 0], flat, xs.ravel())
  np.minimum.at(boxes[:, 1], flat, ys.ravel())
  np.maximum.at(boxes[:, 2], flat, xs.ravel() + 1)
  np.maximum.at(boxes[:, 3], flat, ys.ravel() + 1)
  bins = np.minimum((image.reshape(-1, image.shape[-1]).astype(np.int64) * _BINS) // 256, _BINS - 1)
  hist = np.zeros((n, image.shape[-1] * _BINS))
  for ch in range(image.shape[-1]):
    np.add.at(hist, (flat, ch * _BINS + bins[:, ch]), 1.0)
  hist /= np.maximum(hist.sum(1, keepdims=True), 1.0)
  return {i: {"size": int(sizes[i]), "box": boxes[i], "hist": hist[i]} for i in range(n) if sizes[i]}


def _similarity(a: dict, b: dict, image_area: float) -> float:
  colour = np.minimum(a["hist"], b["hist"]).sum() / 3.0
  size = 1.0 - (a["size"] + b["size"]) / image_area
  box = np.concatenate([np.minimum(a["box"][:2], b["box"][:2]), np.maximum(a["box"][2:], b["box"][2:])])
  fill = 1.0 - ((box[2] - box[0]) * (box[3] - box[1]) - a["size"] - b["size"]) / image_area
  return colour + size + fill


def selective_search(image: np.ndarray, *, scale: float = 100.0, sigma: float = 0.8, min_size: int = 20,
                     min_box: float = 0.05, max_box: float = 0.95) -> np.ndarray:
  """Hierarchical-grouping proposals of one RGB image, as normalised `xyxy` boxes.

  Args:
    image: `(H, W, 3)` uint8.
    scale, sigma, min_size: `skimage.segmentation.felzenszwalb` parameters.
    min_box, max_box: proposals whose longer side is outside this fraction of the image are dropped.

  Returns:
    `[K, 4]` float32 distinct boxes, initial regions first, then in merge order.
  """
  from skimage.segmentation import felzenszwalb  # pylint: disable=g-import-not-at-top

  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
  h, w = image.shape[:2]
  labels = felzenszwalb(image, scale=scale, sigma=sigma, min_size=min_size)
  regions = _region_stats(image, labels)
  pairs = set()
  for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):
    edge = a != b
    pairs.update(zip(np.minimum(a, b)[edge].tolist(), np.maximum(a, b)[edge].tolist()))
  area = float(h * w)
  sims = {p: _similarity(regions[p[0]], regions[p[1]], area) for p in pairs}
  boxes = [r["box"] for r in regions.values()]
  next_id = max(regions) + 1
  while sims:
    i, j = max(sims, key=sims.get)
    a, b = regions[i], regions[j]
    merged = {"size": a["size"] + b["size"],
              "box": np.concatenate([np.minimum(a["box"][:2], b["box"][:2]), np.maximum(a["box"][2:], b["box"][2:])]),
              "hist": (a["hist"] * a["size"] + b["hist"] * b["size"]) / (a["size"] + b["size"])}
    regions[next_id] = merged
    boxes.append(merged["box"])
    neighbours = {k for p in sims if i in p or j in p for k in p} - {i, j}
    sims = {p: s for p, s in sims.items() if i not in p and j not in p}
    for k in neighbours:
      sims[(k, next_id)] = _similarity(regions[k], merged, area)
    next_id += 1
  boxes = np.array(boxes, np.float32) / np.array([w, h, w, h], np.float32)
  longer = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
  boxes = boxes[(longer >= min_box) & (longer <= max_box)]
  _, first = np.unique(np.round(boxes, 4), axis=0, return_index=True)
  return boxes[np.sort(first)]


def pad_proposals(boxes: np.ndarray, num: int) -> tuple[np.ndarray, np.ndarray]:
  """The first `num` proposals padded with zero boxes to exactly `num`, and their valid mask."""
  boxes = np.asarray(boxes, np.float32).reshape(-1, 4)[:num]
  out = np.zeros((num, 4), np.float32)
  out[:len(boxes)] = boxes
  return out, np.arange(num) < len(boxes)


def encode_deltas(proposals: jax.Array, targets: jax.Array) -> jax.Array:
  """R-CNN box regression targets: (dx, dy) = centre offset / proposal size, (dw, dh) = log size ratio.

  NumPy in, NumPy out (host-side labelling); JAX arrays (and tracers) in, JAX out.
  """
  xp = jnp if isinstance(proposals, jax.Array) or isinstance(targets, jax.Array) else np
  pw, ph = proposals[..., 2] - proposals[..., 0], proposals[..., 3] - proposals[..., 1]
  tw, th = targets[..., 2] - targets[..., 0], targets[..., 3] - targets[..., 1]
  dx = ((targets[..., 0] + targets[..., 2]) - (proposals[..., 0] + proposals[..., 2])) / (2 * pw)
  dy = ((targets[..., 1] + targets[..., 3]) - (proposals[..., 1] + proposals[..., 3])) / (2 * ph)
  return xp.stack([dx, dy, xp.log(tw / pw), xp.log(th / ph)], -1)


def decode_deltas(proposals: jax.Array, deltas: jax.Array) -> jax.Array:
  """Inverse of `encode_deltas`: refined `xyxy` boxes (log sizes clipped for safety)."""
  pw, ph = proposals[..., 2] - proposals[..., 0], proposals[..., 3] - proposals[..., 1]
  cx = (proposals[..., 0] + proposals[..., 2]) / 2 + deltas[..., 0] * pw
  cy = (proposals[..., 1] + proposals[..., 3]) / 2 + deltas[..., 1] * ph
  w = pw * jnp.exp(jnp.clip(deltas[..., 2], -4.0, 4.0))
  h = ph * jnp.exp(jnp.clip(deltas[..., 3], -4.0, 4.0))
  return jnp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def crop_and_resize(image: jax.Array, boxes: jax.Array, size: int) -> jax.Array:
  """Warps each normalised `xyxy` box of `(H, W, C)` to `(size, size, C)` by bilinear sampling: `[R, size, size, C]`."""
  h, w, _ = image.shape
  t = (jnp.arange(size) + 0.5) / size
  ys = (boxes[:, 1, None] + t[None] * (boxes[:, 3, None] - boxes[:, 1, None])) * h - 0.5  # [R, size]
  xs = (boxes[:, 0, None] + t[None] * (boxes[:, 2, None] - boxes[:, 0, None])) * w - 0.5
  yy = jnp.broadcast_to(ys[:, :, None], (boxes.shape[0], size, size))
  xx = jnp.broadcast_to(xs[:, None, :], (boxes.shape[0], size, size))
  sample = lambda channel: jax.scipy.ndimage.map_coordinates(channel, [yy, xx], order=1, mode="nearest")
  return jnp.moveaxis(jax.vmap(sample, in_axes=-1, out_axes=0)(image), 0, -1)


def _bin_ranges(boxes: jax.Array, extent: int, bins: int, axis: int) -> tuple[jax.Array, jax.Array]:
  """`[R, bins]` int start and end (exclusive) cells of each RoI bin along one axis (0 = x, 1 = y).

  The RoI spans [lo, hi) = box * extent; bin i covers cells floor(lo + i (hi - lo) / bins)
  to ceil(lo + (i + 1) (hi - lo) / bins), clipped to the map, at least one cell.
  """
  lo, hi = boxes[:, axis] * extent, boxes[:, axis + 2] * extent
  edges = lo[:, None] + (hi - lo)[:, None] * jnp.arange(bins + 1)[None] / bins
  start = jnp.clip(jnp.floor(edges[:, :-1]), 0, extent - 1)
  end = jnp.clip(jnp.maximum(jnp.ceil(edges[:, 1:]), start + 1), 1, extent)
  return start.astype(jnp.int32), end.astype(jnp.int32)


def _levels(n: int) -> int:
  return max(n - 1, 1).bit_length()


def _shift_max(x: jax.Array, pos: jax.Array, step: int, axis: int) -> tuple[jax.Array, jax.Array]:
  """max(x[i], x[i + step]) along `axis` (x[i + step] taken as x[i] past the end), and where the max lies."""
  shift = lambda t: jnp.concatenate([jax.lax.slice_in_dim(t, step, t.shape[axis], axis=axis),
                                     jax.lax.slice_in_dim(t, t.shape[axis] - step, t.shape[axis], axis=axis)],
                                    axis=axis)
  sx, spos = shift(x), shift(pos)
  take = sx > x
  return jnp.where(take, sx, x), jnp.where(take, spos, pos)


def _roi_max_pool_and_argmax(features: jax.Array, boxes: jax.Array, output_size: Sequence[int]):
  """Each bin's maximum and its flat position (row * W + column) in the feature map, both `[R, ph, pw, C]`.

  The maximum is read from a 2-D sparse table (maxima over 2^a x 2^b blocks)
  with four lookups, so the cost does not grow with the RoI size.
  """
  h, w, c = features.shape
  pos = jnp.broadcast_to((jnp.arange(h)[:, None] * w + jnp.arange(w)[None, :])[:, :, None], (h, w, c))
  rows = [(features, pos)]
  for a in range(1, _levels(h)):
    rows.append(_shift_max(*rows[-1], 2 ** (a - 1), axis=0))
  table, where = [], []
  for r in rows:
    cols = [r]
    for b in range(1, _levels(w)):
      cols.append(_shift_max(*cols[-1], 2 ** (b - 1), axis=1))
    table.append(jnp.stack([v for v, _ in cols]))
    where.append(jnp.stack([p for _, p in cols]))
  table, where = jnp.stack(table), jnp.stack(where)  # [levels_h, levels_w, H, W, C]
  r0, r1 = _bin_ranges(boxes, h, output_size[0], axis=1)  # [R, ph]
  c0, c1 = _bin_ranges(boxes, w, output_size[1], axis=0)  # [R, pw]
  level = lambda n, count: jnp.sum(n[..., None] >= 2 ** jnp.arange(1, count), axis=-1)
  a, b = level(r1 - r0, _levels(h)), level(c1 - c0, _levels(w))
  ra, rb = r0, r1 - 2 ** a  # two row blocks of height 2^a covering [r0, r1)
  ca, cb = c0, c1 - 2 ** b
  best, best_pos = None, None
  for rr, cc in ((ra, ca), (ra, cb), (rb, ca), (rb, cb)):
    index = (a[:, :, None], b[:, None, :], rr[:, :, None], cc[:, None, :])
    value, at = table[index], where[index]
    if best is None:
      best, best_pos = value, at
    else:
      take = value > best
      best, best_pos = jnp.where(take, value, best), jnp.where(take, at, best_pos)
  return best, best_pos


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def roi_max_pool(features: jax.Array, boxes: jax.Array, output_size: Sequence[int] = (4, 4)) -> jax.Array:
  """RoI max pooling of `(H, W, C)` features over normalised `xyxy` boxes: `[R, ph, pw, C]`; jit-able.

  The gradient goes to each bin's maximum (scattered to its recorded position,
  one scatter-add: the sparse table's own backward pass is several times slower
  on XLA:CPU); the boxes get none (their bins are whole cells).
  """
  return _roi_max_pool_and_argmax(features, boxes, tuple(output_size))[0]


def _roi_max_pool_fwd(features, boxes, output_size):
  value, pos = _roi_max_pool_and_argmax(features, boxes, tuple(output_size))
  return value, (pos, features, boxes)


def _roi_max_pool_bwd(output_size, residuals, g):
  del output_size
  pos, features, boxes = residuals
  h, w, c = features.shape
  channel = jnp.broadcast_to(jnp.arange(c), pos.shape)
  grad = jnp.zeros((h * w, c), g.dtype).at[pos.reshape(-1), channel.reshape(-1)].add(g.reshape(-1))
  return grad.reshape(h, w, c).astype(features.dtype), jnp.zeros_like(boxes)


roi_max_pool.defvjp(_roi_max_pool_fwd, _roi_max_pool_bwd)
