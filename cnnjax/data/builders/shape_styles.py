"""The `shape_styles` dataset: one circle, square or triangle per 64x64 image, filled, outlined or hatched.

Nine classes, `label = 3 * style + shape`, balanced (the label is drawn first).
The shape's size, aspect, position and colour vary, on the textured noisy
background of `shapes`; the outline (2-3 px) and the hatching (stripes 4-7 px
apart at any angle) make the style a matter of fine detail, so the task needs
more than the colour blob a tiny net finds first. 64x64 is the smallest size
the classic ImageNet nets (AlexNet: 63) accept.
"""

import numpy as np

from cnnjax.data.builders import _image_classes, shapes

SHAPE_NAMES = shapes.CLASS_NAMES
STYLE_NAMES = ("filled", "outline", "hatched")
CLASS_NAMES = tuple(f"{style} {shape}" for style in STYLE_NAMES for shape in SHAPE_NAMES)
IMAGE_SIZE = 64
SPLITS = {"train": 3000, "test": 600}
SEED = 2
SIZE_RANGE = (0.35, 0.8)  # side, as a fraction of the image side


def style_mask(style: int, cls: int, box: np.ndarray, apex: float, rng: np.random.Generator) -> np.ndarray:
  """The painted pixels of one shape in `box` (normalised `xyxy`): all of it, a band inside its edge, or stripes."""
  full = shapes.shape_mask(cls, box, apex, IMAGE_SIZE)
  if style == 0:
    return full
  if style == 1:
    b = rng.uniform(2.0, 3.0) / IMAGE_SIZE
    # A triangle's slanted sides and apex are steeper than its box's edges: its inner box shrinks twice as much there.
    inset = np.array([2 * b, 2 * b, -2 * b, -b]) if cls == 2 else np.array([b, b, -b, -b])
    return full & ~shapes.shape_mask(cls, box + inset, apex, IMAGE_SIZE)
  c = np.arange(IMAGE_SIZE) + 0.5
  y, x = np.meshgrid(c, c, indexing="ij")
  angle, period = rng.uniform(0, np.pi), rng.uniform(4.0, 7.0)
  phase = (x * np.cos(angle) + y * np.sin(angle)) / period + rng.uniform()
  return full & (phase % 1.0 < 0.5)


def generate(split: str, index: int) -> dict:
  """One example: a uint8 image and its label, a pure function of (split, index)."""
  rng = shapes.example_rng(split, index, seed=SEED)
  label = int(rng.integers(len(CLASS_NAMES)))
  style, cls = divmod(label, len(SHAPE_NAMES))
  img = shapes.background(rng, IMAGE_SIZE)
  side, aspect = rng.uniform(*SIZE_RANGE), np.exp(rng.uniform(-0.3, 0.3))
  w, h = min(side * aspect, 0.9), min(side / aspect, 0.9)
  x1, y1 = rng.uniform(0.03, 0.97 - w), rng.uniform(0.03, 0.97 - h)
  mask = style_mask(style, cls, np.array([x1, y1, x1 + w, y1 + h]), rng.uniform(0.2, 0.8), rng)
  img[mask] = shapes.contrasting_colour(rng, img[mask].mean(0)) + rng.normal(0, 0.03, (int(mask.sum()), 3))
  return {"image": np.clip(np.round(img * 255), 0, 255).astype(np.uint8), "label": label}


class ShapeStyles(_image_classes.ImageClassesBuilder, skip_registration=True):
  """Nine classes of 64x64 RGB images: a circle, square or triangle, filled, outlined or hatched."""

  IMAGE_SIZE, CLASS_NAMES, SPLITS = IMAGE_SIZE, CLASS_NAMES, SPLITS
  generate = staticmethod(generate)


Builder = ShapeStyles
