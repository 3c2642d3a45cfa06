"""Sliding-window detection: a crop classifier, the naive detector and its convolutional implementation.

`WindowClassifier` classifies a `window x window` crop (class 0 = background)
with VALID convolutions and 2x2 max pools, so a window's prediction depends on
its pixels only. `fc_to_conv` turns its dense layers into convolutions (the
first into a conv whose kernel covers the last feature map, the next into 1x1
convs): `ConvWindowClassifier` then predicts every window at stride
2**len(features) of a larger image in one forward pass, identical to cropping
each window and classifying it (`naive_window_scores`). Other strides: a
multiple of that stride strides the first converted layer; a divisor of it
runs the network on shifted copies of the image and interleaves the outputs
(shift-and-stitch, as in OverFeat).
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from cnnjax.detection.boxes import select_detections
from cnnjax.models.layers import Conv, max_pool


def feature_size(window: int, features: Sequence[int], kernel: int) -> int:
  """Side of the last feature map for a `window` input; raises ValueError if a pool would drop pixels."""
  s = window
  for _ in features:
    s = s - kernel + 1
    if s < 2 or s % 2:
      raise ValueError(f"window={window} with kernel={kernel} and {len(features)} conv+pool stages gives an odd "
                       f"or empty feature map ({s}) before a 2x2 pool; pick a window that halves evenly")
    s //= 2
  return s


class _Trunk(nn.Module):
  features: Sequence[int]
  kernel: int
  dtype: Any

  @nn.compact
  def __call__(self, x):
    for i, f in enumerate(self.features):
      x = Conv(f, (self.kernel, self.kernel), padding="VALID", dtype=self.dtype, name=f"conv{i}")(x)
      x = max_pool(nn.relu(x), (2, 2), strides=(2, 2))
    return x


class WindowClassifier(nn.Module):
  """Conv+pool stages, then dense layers: `(N, window, window, C) -> (N, num_classes)` logits."""
  num_classes: int
  features: Sequence[int] = (16, 32)
  kernel: int = 5
  hidden: Sequence[int] = (128,)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    x = _Trunk(self.features, self.kernel, self.dtype, name="trunk")(x.astype(self.dtype))
    x = x.reshape(x.shape[0], -1)  # (h, w, c) order, which fc_to_conv relies on
    for j, h in enumerate(self.hidden):
      x = nn.relu(nn.Dense(h, dtype=self.dtype, name=f"fc{j}")(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, name=f"fc{len(self.hidden)}")(x).astype(jnp.float32)


class ConvWindowClassifier(nn.Module):
  """`WindowClassifier` with its dense layers as convolutions: `(N, H, W, C) -> (N, nH, nW, num_classes)`."""
  num_classes: int
  features: Sequence[int] = (16, 32)
  kernel: int = 5
  hidden: Sequence[int] = (128,)
  window: int = 32
  fc_stride: int = 1  # stride of the first converted layer: windows every fc_stride * 2**len(features) pixels
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    f = feature_size(self.window, self.features, self.kernel)
    x = _Trunk(self.features, self.kernel, self.dtype, name="trunk")(x.astype(self.dtype))
    for j, h in enumerate((*self.hidden, self.num_classes)):
      size, strides = ((f, f), (self.fc_stride,) * 2) if j == 0 else ((1, 1), (1, 1))
      x = Conv(h, size, strides=strides, padding="VALID", dtype=self.dtype, name=f"fc{j}")(x)
      x = nn.relu(x) if j < len(self.hidden) else x
    return x.astype(jnp.float32)


def fc_to_conv(params: dict, window: int, features: Sequence[int], kernel: int) -> dict:
  """Parameters of a trained `WindowClassifier` as parameters of the matching `ConvWindowClassifier`.

  The first dense kernel `[f*f*C, H]` becomes a conv kernel `[f, f, C, H]`
  (f = `feature_size(window, ...)`); later ones `[H, H']` become `[1, 1, H, H']`.
  """
  f = feature_size(window, features, kernel)
  out = {"trunk": params["trunk"]}
  fcs = sorted((k for k in params if k.startswith("fc")), key=lambda k: int(k[2:]))
  for j, name in enumerate(fcs):
    w = params[name]["kernel"]
    shape = (f, f, w.shape[0] // (f * f), w.shape[1]) if j == 0 else (1, 1, *w.shape)
    out[name] = {"kernel": w.reshape(shape), "bias": params[name]["bias"]}
  return out


def window_grid(height: int, width: int, window: int, stride: int) -> tuple[int, int]:
  """Number of window positions (rows, columns) at `stride` that fit in the image."""
  if height < window or width < window:
    raise ValueError(f"image of size {(height, width)} is smaller than the window {window}")
  return (height - window) // stride + 1, (width - window) // stride + 1


def naive_window_scores(model: WindowClassifier, variables: dict, images: jnp.ndarray, window: int,
                        stride: int) -> jnp.ndarray:
  """Crops every window at `stride` and classifies each crop: `(N, H, W, C) -> (N, nH, nW, classes)`."""
  n, h, w, c = images.shape
  rows, cols = window_grid(h, w, window, stride)
  ys = (jnp.arange(rows) * stride)[:, None] + jnp.arange(window)[None, :]
  xs = (jnp.arange(cols) * stride)[:, None] + jnp.arange(window)[None, :]
  crops = images[:, ys[:, None, :, None], xs[None, :, None, :]]  # (N, rows, cols, window, window, C)
  logits = model.apply(variables, crops.reshape(-1, window, window, c))
  return logits.reshape(n, rows, cols, -1)


def conv_window_scores(model: WindowClassifier, variables: dict, images: jnp.ndarray, window: int,
                       stride: int | None = None) -> jnp.ndarray:
  """Every window's logits from the convolutional form of `model`: `(N, nH, nW, classes)`.

  Same windows and values as `naive_window_scores` at `stride`, which must be a
  multiple or a divisor of the network's own stride 2**len(model.features) (the default).
  """
  base = 2 ** len(model.features)
  stride = stride or base
  if stride % base and base % stride:
    raise ValueError(f"stride={stride} must be a multiple or a divisor of the network's stride {base}")
  conv = ConvWindowClassifier(model.num_classes, model.features, model.kernel, model.hidden, window,
                              max(stride // base, 1), model.dtype)
  params = {"params": fc_to_conv(variables["params"], window, model.features, model.kernel)}
  if stride >= base:
    return conv.apply(params, images)
  r = base // stride  # shift-and-stitch: r x r shifted copies, each giving every r-th row and column
  n, h, w, _ = images.shape
  rows, cols = window_grid(h, w, window, stride)
  out = jnp.zeros((n, rows, cols, model.num_classes), jnp.float32)
  for a in range(r):
    for b in range(r):
      out = out.at[:, a::r, b::r].set(conv.apply(params, images[:, a * stride:, b * stride:]))
  return out


def window_detections(logits: jnp.ndarray, window: int, stride: int, image_size: Sequence[int], *,
                      score_threshold: float, iou_threshold: float, max_detections: int) -> dict:
  """Fixed-size detections of one image from window logits `(nH, nW, classes)`, class 0 = background.

  Boxes are the windows themselves (normalised by `image_size` (H, W)); score =
  probability of the best object class; per-class NMS; classes are shifted to
  0..classes-2 (background removed).
  """
  rows, cols, _ = logits.shape
  probs = jax.nn.softmax(logits, -1)[..., 1:].reshape(rows * cols, -1)
  y, x = jnp.meshgrid(jnp.arange(rows) * stride, jnp.arange(cols) * stride, indexing="ij")
  h, w = image_size
  boxes = jnp.stack([x / w, y / h, (x + window) / w, (y + window) / h], -1).reshape(-1, 4).astype(jnp.float32)
  classes = jnp.argmax(probs, -1).astype(jnp.int32)
  scores = jnp.max(probs, -1)
  return select_detections(boxes, scores, classes, iou_threshold, max_outputs=max_detections,
                           score_threshold=score_threshold)


def make_window_crops(source: Sequence[dict], window: int, num_crops: int, *, seed: int = 0,
                      background_fraction: float = 0.5) -> list[dict]:
  """Training crops from a detection source: objects (label class + 1) and background (label 0).

  An object crop is a square around its box, 1.05-1.35 times its longer side,
  jittered; a background crop is a random square overlapping every object by
  less than 15% of that object's area. All are resized to `window`.
  """
  rng = np.random.default_rng(seed)
  crops = []
  while len(crops) < num_crops:
    record = source[int(rng.integers(len(source)))]
    image, boxes = np.asarray(record["image"]), np.asarray(record["boxes"]).reshape(-1, 4)
    size = image.shape[0]
    if rng.uniform() >= background_fraction and len(boxes):
      k = int(rng.integers(len(boxes)))
      b = boxes[k] * size
      side = max(b[2] - b[0], b[3] - b[1]) * rng.uniform(1.05, 1.35)
      cx, cy = (b[0] + b[2]) / 2 + rng.uniform(-0.08, 0.08) * side, (b[1] + b[3]) / 2 + rng.uniform(-0.08, 0.08) * side
      label = int(record["classes"][k]) + 1
    else:
      side = rng.uniform(0.15, 0.45) * size
      cx, cy = rng.uniform(side / 2, size - side / 2, 2)
      crop_box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]) / size
      iw = np.clip(np.minimum(boxes[:, 2], crop_box[2]) - np.maximum(boxes[:, 0], crop_box[0]), 0, None)
      ih = np.clip(np.minimum(boxes[:, 3], crop_box[3]) - np.maximum(boxes[:, 1], crop_box[1]), 0, None)
      if np.any(iw * ih > 0.15 * (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])):
        continue
      label = 0
    side = min(side, size)
    cx, cy = np.clip([cx, cy], side / 2, size - side / 2)  # keep the square inside the image
    region = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    crop = Image.fromarray(image).resize((window, window), Image.BILINEAR, box=region)
    crops.append({"image": np.asarray(crop), "label": np.int32(label)})
  return crops
