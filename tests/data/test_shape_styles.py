"""The `shape_styles` builder: shapes, determinism, labels, and that the style is drawn as its name says."""

import numpy as np

from cnnjax.data.builders import shape_styles, shapes


def test_examples_are_deterministic_and_labelled():
  examples = [shape_styles.generate("train", i) for i in range(60)]
  again = shape_styles.generate("train", 7)
  assert np.array_equal(examples[7]["image"], again["image"]) and examples[7]["label"] == again["label"]
  assert not np.array_equal(examples[7]["image"], shape_styles.generate("test", 7)["image"])
  for ex in examples:
    assert ex["image"].shape == (64, 64, 3) and ex["image"].dtype == np.uint8
    assert 0 <= ex["label"] < len(shape_styles.CLASS_NAMES) == 9
  assert len({ex["label"] for ex in examples}) == 9  # 60 draws of 9 balanced classes hit every class
  assert shape_styles.CLASS_NAMES[3 * 1 + 2] == "outline triangle"


def test_style_masks():
  box, rng = np.array([0.2, 0.2, 0.8, 0.8]), np.random.default_rng(0)
  for cls in range(3):
    full = shapes.shape_mask(cls, box, 0.5, shape_styles.IMAGE_SIZE)
    filled, outline, hatched = (shape_styles.style_mask(style, cls, box, 0.5, rng) for style in range(3))
    assert np.array_equal(filled, full)
    assert not (outline & ~full).any() and not (hatched & ~full).any()
    assert 0.1 < outline.sum() / full.sum() < 0.5, cls  # a thin band, not the area
    assert 0.3 < hatched.sum() / full.sum() < 0.7, cls  # stripes half on, half off
    assert not outline[32, 32] and full[40, 32]  # the centre is empty
