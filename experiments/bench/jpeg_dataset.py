"""An ImageNet-like TFDS dataset of synthetic JPEGs (varied sizes, encoded at a given quality), prepared offline.

The input benchmark and the catalog-recipe tests read it exactly as they would
read a prepared catalog dataset (`tfds.features.Image` stored as `array_record`):
`sources.load('synthetic_jpegs/<config>', split, data_dir=...)`, with configs
'tiny' (tests: 24 + 8 images of 40-90 px), '1k' and '10k' (1,000 or 10,000
training images of 300-500 px a side at quality 90, 100 validation images).
"""

import dataclasses
import io

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

NAME = "synthetic_jpegs"


@dataclasses.dataclass
class JpegConfig(tfds.core.BuilderConfig):
  """Split sizes, the range of image sides in pixels and the JPEG quality."""
  num_train: int = 1000
  num_validation: int = 100
  min_side: int = 300
  max_side: int = 500
  quality: int = 90


NUM_CLASSES = 10


class SyntheticJpegs(tfds.core.GeneratorBasedBuilder):
  """Images of smooth random colour fields plus fine noise (about ImageNet's bytes per pixel at quality 90)."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = [
      JpegConfig(name="tiny", num_train=24, num_validation=8, min_side=40, max_side=90),
      JpegConfig(name="1k", num_train=1_000),
      JpegConfig(name="10k", num_train=10_000),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing is downloaded
    c = self.builder_config
    return {"train": self._generate_examples(c.num_train, seed=0),
            "validation": self._generate_examples(c.num_validation, seed=1)}

  def _generate_examples(self, count: int, seed: int):
    c = self.builder_config
    for index in range(count):
      rng = np.random.default_rng([seed, index])
      width, height = (int(s) for s in rng.integers(c.min_side, c.max_side + 1, 2))
      yield index, {"image": _jpeg(_picture(rng, width, height), c.quality),
                    "label": int(rng.integers(NUM_CLASSES))}


def _picture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
  coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
  noise = rng.normal(0, 12, (height, width, 3))
  return np.clip(np.asarray(coarse, np.float64) + noise, 0, 255).astype(np.uint8)


def _jpeg(image: np.ndarray, quality: int) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
  return buffer.getvalue()


def prepare(data_dir: str, config_name: str = "tiny") -> str:
  """Generates the dataset's config `config_name` into `data_dir` unless present.

  Returns the name to pass to `sources.load` / `--config.dataset`.
  """
  builder = SyntheticJpegs(config=config_name, data_dir=data_dir, file_format="array_record")
  if not builder.is_prepared():
    builder.download_and_prepare(file_format="array_record")
  return f"{NAME}/{config_name}"
