"""The `shapes` dataset: coloured circles, squares and triangles on textured noise, for detection.

Each 96x96 RGB image holds 1 to 4 objects of random size, aspect, colour and
position; objects may overlap (each keeps most of its area visible). Per object:
its box (normalised `xyxy`), class and landmarks (a square's corners, a
triangle's vertices, a circle's centre; padded to 4 points with a mask).
Generation is vectorised NumPy, seeded per example, so it is deterministic.
"""

import numpy as np
import tensorflow_datasets as tfds

CLASS_NAMES = ("circle", "square", "triangle")
NUM_LANDMARKS = 4
IMAGE_SIZE = 96
MAX_OBJECTS = 4
SPLITS = {"train": 4000, "test": 500}
SEED = 0
# Side lengths as a fraction of the image side.
SIZE_RANGE = (0.14, 0.38)
_SPLIT_IDS = {"train": 0, "test": 1}


def background(rng: np.random.Generator, size: int) -> np.ndarray:
  """A textured, noisy float background in [0, 1]: a colour gradient, soft stripes, blobs, noise."""
  g = np.linspace(0.0, 1.0, size)
  y, x = np.meshgrid(g, g, indexing="ij")
  base = rng.uniform(0.25, 0.75, 3)
  tilt = rng.uniform(-0.2, 0.2, (2, 3))
  img = base + x[..., None] * tilt[0] + y[..., None] * tilt[1]
  freq, angle, phase = rng.uniform(2, 9), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
  stripes = np.sin(2 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)) + phase)
  img = img + 0.08 * stripes[..., None] * rng.uniform(0.3, 1.0, 3)
  for _ in range(rng.integers(2, 6)):
    c, r = rng.uniform(0, 1, 2), rng.uniform(0.05, 0.25)
    blob = np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2) / (2 * r * r))
    img = img + blob[..., None] * rng.uniform(-0.15, 0.15, 3)
  img = img + rng.normal(0, rng.uniform(0.02, 0.07), img.shape)
  return img


def shape_mask(cls: int, box: np.ndarray, apex: float, size: int) -> np.ndarray:
  """Boolean pixel mask of one shape filling the normalised `xyxy` box."""
  c = (np.arange(size) + 0.5) / size
  y, x = np.meshgrid(c, c, indexing="ij")
  x1, y1, x2, y2 = box
  if cls == 0:  # ellipse inscribed in the box
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
  if cls == 1:  # axis-aligned rectangle
    return (x >= x1) & (x <= x2) & (y >= y1) & (y <= y2)
  # Triangle: apex on the top edge, base along the bottom edge.
  ax = x1 + apex * (x2 - x1)
  t = (y - y1) / (y2 - y1)
  return (t >= 0) & (t <= 1) & (x >= ax + (x1 - ax) * t) & (x <= ax + (x2 - ax) * t)


def landmarks(cls: int, box: np.ndarray, apex: float) -> tuple[np.ndarray, np.ndarray]:
  """(NUM_LANDMARKS, 2) normalised (x, y) points and their (NUM_LANDMARKS,) presence mask."""
  x1, y1, x2, y2 = box
  if cls == 0:
    pts = [((x1 + x2) / 2, (y1 + y2) / 2)]
  elif cls == 1:
    pts = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
  else:
    pts = [(x1 + apex * (x2 - x1), y1), (x1, y2), (x2, y2)]
  out = np.zeros((NUM_LANDMARKS, 2), np.float32)
  out[:len(pts)] = pts
  mask = np.arange(NUM_LANDMARKS) < len(pts)
  return out, mask.astype(np.uint8)


def _overlap_ok(box: np.ndarray, others: list[np.ndarray]) -> bool:
  """Each pair may overlap by at most 35% of the smaller box, so every object stays mostly visible."""
  for o in others:
    iw = max(0.0, min(box[2], o[2]) - max(box[0], o[0]))
    ih = max(0.0, min(box[3], o[3]) - max(box[1], o[1]))
    smaller = min((box[2] - box[0]) * (box[3] - box[1]), (o[2] - o[0]) * (o[3] - o[1]))
    if iw * ih > 0.35 * smaller:
      return False
  return True


def contrasting_colour(rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
  """A saturated colour that differs clearly from the local background colour `avoid`."""
  for _ in range(20):
    c = rng.uniform(0, 1, 3)
    c = (c - c.min()) / max(c.max() - c.min(), 1e-3) * rng.uniform(0.6, 1.0) + rng.uniform(0, 0.3)
    if np.abs(np.clip(c, 0, 1) - avoid).sum() > 0.6:
      break
  return np.clip(c, 0, 1)


def generate(rng: np.random.Generator, size: int, num_objects: int, size_range: tuple[float, float]) -> dict:
  """Draws one image with up to `num_objects` shapes (fewer if placement fails) and its labels."""
  img = background(rng, size)
  boxes, classes, points, masks = [], [], [], []
  for _ in range(num_objects):
    for _ in range(50):
      side = rng.uniform(*size_range)
      aspect = np.exp(rng.uniform(-0.3, 0.3))
      w, h = min(side * aspect, 0.9), min(side / aspect, 0.9)
      x1, y1 = rng.uniform(0.02, 0.98 - w), rng.uniform(0.02, 0.98 - h)
      box = np.array([x1, y1, x1 + w, y1 + h])
      if _overlap_ok(box, boxes):
        break
    else:
      continue
    cls, apex = int(rng.integers(len(CLASS_NAMES))), rng.uniform(0.2, 0.8)
    mask = shape_mask(cls, box, apex, size)
    img[mask] = contrasting_colour(rng, img[mask].mean(0)) + rng.normal(0, 0.03, (int(mask.sum()), 3))
    pts, pmask = landmarks(cls, box, apex)
    boxes.append(box), classes.append(cls), points.append(pts), masks.append(pmask)
  image = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
  return {
      "image": image,
      "boxes": np.array(boxes, np.float32).reshape(-1, 4),
      "classes": np.array(classes, np.int64),
      "landmarks": np.array(points, np.float32).reshape(-1, NUM_LANDMARKS, 2),
      "landmark_mask": np.array(masks, np.uint8).reshape(-1, NUM_LANDMARKS),
  }


def example_rng(split: str, index: int, seed: int = SEED) -> np.random.Generator:
  """The generator of one example: a pure function of (seed, split, index)."""
  return np.random.default_rng([seed, _SPLIT_IDS[split], index])


class Shapes(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Circles, squares and triangles (1-4 per 96x96 image) with boxes, classes and landmarks."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__.split("\n")[0],
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8),
            "boxes": tfds.features.Tensor(shape=(None, 4), dtype=np.float32),
            "classes": tfds.features.Tensor(shape=(None,), dtype=np.int64),
            "landmarks": tfds.features.Tensor(shape=(None, NUM_LANDMARKS, 2), dtype=np.float32),
            "landmark_mask": tfds.features.Tensor(shape=(None, NUM_LANDMARKS), dtype=np.uint8),
        }),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Generated, nothing to download.
    return {split: self._generate_examples(split, n) for split, n in SPLITS.items()}

  def _generate_examples(self, split, n):
    for i in range(n):
      rng = example_rng(split, i)
      yield i, generate(rng, IMAGE_SIZE, int(rng.integers(1, MAX_OBJECTS + 1)), SIZE_RANGE)


Builder = Shapes
