"""The `shapes_single` dataset: at most one shape per 64x64 image, for classification with localization.

Drawn like `shapes`; a fifth of the images hold no object (`has_object` 0,
`label` 0, zero box and landmarks), so a model learns the objectness `p_c`.
"""

import numpy as np
import tensorflow_datasets as tfds

from cnnjax.data.builders import shapes

CLASS_NAMES = shapes.CLASS_NAMES
NUM_LANDMARKS = shapes.NUM_LANDMARKS
IMAGE_SIZE = 64
SPLITS = {"train": 3000, "test": 500}
EMPTY_FRACTION = 0.2
SIZE_RANGE = (0.3, 0.7)


def generate_single(split: str, index: int) -> dict:
  """One example: image, has_object, label, box, landmarks and landmark_mask (fixed shapes)."""
  rng = shapes.example_rng(split, index, seed=shapes.SEED + 1)
  num = 0 if rng.uniform() < EMPTY_FRACTION else 1
  ex = shapes.generate(rng, IMAGE_SIZE, num, SIZE_RANGE)
  has = len(ex["classes"]) > 0
  return {
      "image": ex["image"],
      "has_object": np.uint8(has),
      "label": int(ex["classes"][0]) if has else 0,
      "box": ex["boxes"][0] if has else np.zeros(4, np.float32),
      "landmarks": ex["landmarks"][0] if has else np.zeros((NUM_LANDMARKS, 2), np.float32),
      "landmark_mask": ex["landmark_mask"][0] if has else np.zeros(NUM_LANDMARKS, np.uint8),
  }


class ShapesSingle(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Zero or one circle, square or triangle per 64x64 image, with its box and landmarks."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__.split("\n")[0],
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8),
            "has_object": tfds.features.Tensor(shape=(), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
            "box": tfds.features.Tensor(shape=(4,), dtype=np.float32),
            "landmarks": tfds.features.Tensor(shape=(NUM_LANDMARKS, 2), dtype=np.float32),
            "landmark_mask": tfds.features.Tensor(shape=(NUM_LANDMARKS,), dtype=np.uint8),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Generated, nothing to download.
    return {split: self._generate_examples(split, n) for split, n in SPLITS.items()}

  def _generate_examples(self, split, n):
    for i in range(n):
      yield i, generate_single(split, i)


Builder = ShapesSingle
