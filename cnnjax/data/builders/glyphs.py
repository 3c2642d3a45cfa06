"""The `glyphs` dataset: 20 classes of small symbols on textured noise, 20,000 training images of 32x32.

Made for the claims that the digits are too small and too easy for: 1,397 digits
are memorised by any network in a few hundred steps, so a deep plain network's
training error cannot show the degradation ResNets remove, and no source task is
large enough to transfer from. Each image holds one glyph (disc, ring, bars,
crosses, letters, dots...) of random size, position, aspect, colour and a small
rotation on the `shapes` background, with a distracting stroke and pixel noise:
the class depends on the glyph's form alone, in every nuisance. Generation is
vectorised NumPy, seeded per example, so it is deterministic.
"""

import numpy as np

from cnnjax.data.builders import _image_classes, shapes

IMAGE_SIZE = 32
SPLITS = {"train": 20000, "test": 2000}
SEED = 0
HALF_SIZE = (5.0, 12.0)  # the glyph's half-extent in pixels
MAX_ROTATION = np.pi / 12  # small, so bars, crosses and triangles keep their orientation classes
_SPLIT_IDS = {"train": 0, "test": 1}


def _disc(u, v, cx=0.0, cy=0.0, r=0.8):
  return (u - cx) ** 2 + (v - cy) ** 2 < r * r


def _box(u, v, x1, x2, y1, y2):
  return (u >= x1) & (u <= x2) & (v >= y1) & (v <= y2)


def _ring(u, v):
  return _disc(u, v, r=0.85) & ~_disc(u, v, r=0.5)


def _plus(u, v):
  return _box(u, v, -0.22, 0.22, -0.85, 0.85) | _box(u, v, -0.85, 0.85, -0.22, 0.22)


def _triangle(u, v):
  return (v >= -0.8) & (v <= 0.8) & (np.abs(u) <= (v + 0.8) * 0.55)


# Each glyph is a mask over glyph coordinates (u right, v down), both in [-1, 1].
GLYPHS = {
    "disc": _disc,
    "ring": _ring,
    "square": lambda u, v: _box(u, v, -0.75, 0.75, -0.75, 0.75),
    "frame": lambda u, v: _box(u, v, -0.8, 0.8, -0.8, 0.8) & ~_box(u, v, -0.45, 0.45, -0.45, 0.45),
    "triangle_up": _triangle,
    "triangle_down": lambda u, v: _triangle(u, -v),
    "plus": _plus,
    "cross": lambda u, v: _plus((u + v) / np.sqrt(2), (v - u) / np.sqrt(2)),
    "bar_horizontal": lambda u, v: _box(u, v, -0.85, 0.85, -0.22, 0.22),
    "bar_vertical": lambda u, v: _box(u, v, -0.22, 0.22, -0.85, 0.85),
    "diamond": lambda u, v: np.abs(u) + np.abs(v) < 0.85,
    "letter_l": lambda u, v: _box(u, v, -0.8, -0.4, -0.8, 0.8) | _box(u, v, -0.8, 0.8, 0.4, 0.8),
    "letter_t": lambda u, v: _box(u, v, -0.8, 0.8, -0.8, -0.4) | _box(u, v, -0.2, 0.2, -0.8, 0.8),
    "letter_h": lambda u, v: _box(u, v, -0.8, -0.45, -0.8, 0.8) | _box(u, v, 0.45, 0.8, -0.8, 0.8)
                             | _box(u, v, -0.8, 0.8, -0.18, 0.18),
    "dots_horizontal": lambda u, v: _disc(u, v, -0.5, 0.0, 0.32) | _disc(u, v, 0.5, 0.0, 0.32),
    "dots_vertical": lambda u, v: _disc(u, v, 0.0, -0.5, 0.32) | _disc(u, v, 0.0, 0.5, 0.32),
    "half_disc": lambda u, v: _disc(u, v) & (v < 0.1),
    "crescent": lambda u, v: _disc(u, v) & ~_disc(u, v, 0.4, 0.0, 0.62),
    "bowtie": lambda u, v: (np.abs(u) <= np.abs(v)) & (np.abs(v) < 0.8),
    "bullseye": lambda u, v: _disc(u, v, r=0.28) | (_disc(u, v, r=0.85) & ~_disc(u, v, r=0.6)),
}
CLASS_NAMES = tuple(GLYPHS)


def render(cls: int, size: int, centre, half: float, aspect: float = 1.0, angle: float = 0.0) -> np.ndarray:
  """Boolean (size, size) mask of glyph `cls` centred at `centre` (x, y), `half` pixels from centre to edge."""
  y, x = np.mgrid[0:size, 0:size] + 0.5
  dx, dy = x - centre[0], y - centre[1]
  cos, sin = np.cos(angle), np.sin(angle)
  u = (cos * dx + sin * dy) / (half * aspect)
  v = (-sin * dx + cos * dy) / (half / aspect)
  return GLYPHS[CLASS_NAMES[cls]](u, v)


def glyph_mask(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
  """Glyph `cls` at a random position, half-extent, aspect and small rotation."""
  half = rng.uniform(*HALF_SIZE)
  aspect = np.exp(rng.uniform(-0.2, 0.2))
  centre = rng.uniform(half, size - half, 2)
  return render(cls, size, centre, half, aspect, rng.uniform(-MAX_ROTATION, MAX_ROTATION))


def stroke_mask(rng: np.random.Generator, size: int) -> np.ndarray:
  """A one-pixel-wide random line segment: clutter that belongs to no class."""
  p, q = rng.uniform(0, size, (2, 2))
  t = np.linspace(0.0, 1.0, 2 * size)
  pts = np.clip((p[:, None] + (q - p)[:, None] * t).astype(int), 0, size - 1)
  mask = np.zeros((size, size), bool)
  mask[pts[1], pts[0]] = True
  return mask


def generate(rng: np.random.Generator, cls: int, size: int = IMAGE_SIZE) -> np.ndarray:
  """One (size, size, 3) uint8 image of glyph `cls`."""
  img = shapes.background(rng, size)
  mask = glyph_mask(rng, cls, size)
  img[mask] = shapes.contrasting_colour(rng, img[mask].mean(0))
  stroke = stroke_mask(rng, size)
  img[stroke] = rng.uniform(0, 1, 3)
  img = img + rng.normal(0, rng.uniform(0.02, 0.08), img.shape)
  return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def example(split: str, index: int) -> dict:
  """Example `index` of `split`: classes cycle so every class has the same count; a pure function of both."""
  rng = np.random.default_rng([SEED, _SPLIT_IDS[split], index])
  cls = index % len(CLASS_NAMES)
  return {"image": generate(rng, cls), "label": cls}


class Glyphs(_image_classes.ImageClassesBuilder, skip_registration=True):
  """20 glyph classes, one glyph a 32x32 RGB image, on textured noise with a distracting stroke."""

  IMAGE_SIZE, CLASS_NAMES, SPLITS = IMAGE_SIZE, CLASS_NAMES, SPLITS
  generate = staticmethod(example)


Builder = Glyphs
