"""The generated `glyphs` dataset: deterministic, balanced, and 20 glyphs that differ in form."""

import numpy as np
import pytest

from cnnjax.data.builders import glyphs

SIZE, CENTRE, HALF = 32, (16, 16), 12


def canonical(name, **kwargs):
  return glyphs.render(glyphs.CLASS_NAMES.index(name), SIZE, CENTRE, HALF, **kwargs)


def iou(a, b):
  return (a & b).sum() / (a | b).sum()


def test_examples_are_a_function_of_split_and_index():
  a, b = glyphs.example("train", 7), glyphs.example("train", 7)
  np.testing.assert_array_equal(a["image"], b["image"])
  assert not np.array_equal(a["image"], glyphs.example("test", 7)["image"])
  assert a["image"].shape == (SIZE, SIZE, 3) and a["image"].dtype == np.uint8


def test_classes_are_balanced_in_both_splits():
  for n in glyphs.SPLITS.values():
    assert n % len(glyphs.CLASS_NAMES) == 0
  labels = [glyphs.example("train", i)["label"] for i in range(3 * len(glyphs.CLASS_NAMES))]
  np.testing.assert_array_equal(np.bincount(labels), np.full(len(glyphs.CLASS_NAMES), 3))


def test_every_pair_of_glyphs_differs_in_form():
  masks = [glyphs.render(c, SIZE, CENTRE, HALF) for c in range(len(glyphs.CLASS_NAMES))]
  assert min(m.sum() for m in masks) > 50  # a visible glyph at this size
  for i in range(len(masks)):
    for j in range(i + 1, len(masks)):
      assert iou(masks[i], masks[j]) < 0.9, (glyphs.CLASS_NAMES[i], glyphs.CLASS_NAMES[j])


@pytest.mark.parametrize("a, b, relation", [
    ("bar_horizontal", "bar_vertical", np.transpose),
    ("dots_horizontal", "dots_vertical", np.transpose),
    ("triangle_up", "triangle_down", np.flipud),
])
def test_paired_glyphs_are_each_others_mirror_or_transpose(a, b, relation):
  np.testing.assert_array_equal(relation(canonical(a)), canonical(b))


def test_a_plus_turned_by_45_degrees_is_the_cross():
  assert iou(canonical("plus", angle=np.pi / 4), canonical("cross")) > 0.95


def test_random_glyphs_are_never_cut_by_the_image_border():
  """The glyph drawn on the 32-px image has all the pixels it has on a canvas with 16 px of margin."""
  for i in range(60):
    cls = i % len(glyphs.CLASS_NAMES)
    mask = glyphs.glyph_mask(np.random.default_rng(i), cls, SIZE)
    rng = np.random.default_rng(i)  # the same draws, in glyph_mask's order
    half, aspect = rng.uniform(*glyphs.HALF_SIZE), np.exp(rng.uniform(-0.2, 0.2))
    centre = rng.uniform(half, SIZE - half, 2)
    angle = rng.uniform(-glyphs.MAX_ROTATION, glyphs.MAX_ROTATION)
    margin = glyphs.render(cls, SIZE + 32, centre + 16, half, aspect, angle)
    np.testing.assert_array_equal(margin[16:16 + SIZE, 16:16 + SIZE], mask)
    assert margin.sum() == mask.sum() > 10, glyphs.CLASS_NAMES[cls]
