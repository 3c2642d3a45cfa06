"""The base of the generated image-classification datasets: a fixed-size RGB image and its class, per record.

A subclass sets `IMAGE_SIZE`, `CLASS_NAMES`, `SPLITS` (split name -> record count) and `generate(split, index)`
(a pure function returning `{'image', 'label'}`); its module docstring's first line describes it. The leading
underscore keeps `sources` from listing this module as a dataset.
"""

import sys
from typing import Callable

import numpy as np
import tensorflow_datasets as tfds


class ImageClassesBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """`{'image': uint8 [IMAGE_SIZE, IMAGE_SIZE, 3], 'label': class}` records, generated offline."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  IMAGE_SIZE: int
  CLASS_NAMES: tuple[str, ...]
  SPLITS: dict[str, int]
  generate: Callable[[str, int], dict]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(sys.modules[type(self).__module__].__doc__ or "").split("\n")[0],
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(self.IMAGE_SIZE, self.IMAGE_SIZE, 3), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=list(self.CLASS_NAMES)),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Generated, nothing to download.
    return {split: self._generate_examples(split, n) for split, n in self.SPLITS.items()}

  def _generate_examples(self, split, n):
    for i in range(n):
      yield i, type(self).generate(split, i)
