"""The `digits` dataset: scikit-learn's bundled handwritten digits at 32x32, as a TFDS builder."""

import numpy as np
import tensorflow_datasets as tfds

IMAGE_SIZE = 32
NUM_TEST = 400
SEED = 0


def make_images() -> tuple[np.ndarray, np.ndarray]:
  """All 1,797 digits resized to (32, 32, 1) uint8 (bilinear, 0..16 scaled to 0..255), and labels."""
  from skimage.transform import resize  # pylint: disable=g-import-not-at-top
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

  digits = load_digits()
  small = digits.images.astype(np.float64) / 16.0  # (N, 8, 8), values 0..16
  big = resize(small, (len(small), IMAGE_SIZE, IMAGE_SIZE), order=1, mode="edge", anti_aliasing=False)
  images = np.clip(np.round(big * 255.0), 0, 255).astype(np.uint8)[..., None]
  return images, digits.target.astype(np.int64)


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
  """A fixed stratified split of the 1,797 labels: 1,397 train and 400 test indices, each sorted."""
  from sklearn.model_selection import train_test_split  # pylint: disable=g-import-not-at-top

  train, test = train_test_split(
      np.arange(len(labels)), test_size=NUM_TEST, stratify=labels, random_state=SEED)
  return {"train": np.sort(train), "test": np.sort(test)}


class Digits(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Handwritten digits 0-9 (UCI / scikit-learn), upsampled from 8x8 to 32x32 grayscale."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description="scikit-learn load_digits resized to 32x32x1 uint8 with a stratified 1,397/400 split.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the data ship with scikit-learn.
    images, labels = make_images()
    return {name: self._generate_examples(images, labels, idx) for name, idx in split_indices(labels).items()}

  def _generate_examples(self, images, labels, indices):
    for i in indices:
      yield int(i), {"image": images[i], "label": int(labels[i])}


Builder = Digits
