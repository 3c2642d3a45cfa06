"""Datasets by name: the embedded digits builder, a catalog dataset from a prepared dir, errors."""

import io
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
import torch
from PIL import Image
from sklearn.datasets import load_digits
from tensorflow_datasets.image_classification import mnist

from cnnjax.data import sources


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("data"))
  sources.load("digits", "train", data_dir=data_dir)
  return data_dir


def _records(source):
  records = source.__getitems__(list(range(len(source))))
  return np.stack([r["image"] for r in records]), np.array([r["label"] for r in records])


def test_digits_records_are_the_sklearn_digits_resized_bilinearly(digits_dir):
  train_x, train_y = _records(sources.load("digits", "train", data_dir=digits_dir))
  test_x, test_y = _records(sources.load("digits", "test", data_dir=digits_dir))
  assert train_x.shape == (1397, 32, 32, 1) and test_x.shape == (400, 32, 32, 1)
  assert train_x.dtype == np.uint8
  digits = load_digits()
  # Independent reference: torch's bilinear resize (half-pixel centres, edge clamp) of 0..16 -> 0..255.
  small = torch.tensor(digits.images[:, None] / 16.0 * 255.0, dtype=torch.float64)
  ref = torch.nn.functional.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False)
  ref = ref.numpy()[:, 0].reshape(len(ref), -1)
  got = np.concatenate([train_x, test_x]).reshape(len(ref), -1).astype(np.float64)
  labels = np.concatenate([train_y, test_y])
  # Match every record to its nearest reference digit: a bijection, within rounding, same label.
  dist = (got ** 2).sum(1)[:, None] + (ref ** 2).sum(1)[None] - 2 * got @ ref.T
  nearest = dist.argmin(1)
  assert len(np.unique(nearest)) == len(ref)
  assert np.abs(got - ref[nearest]).max() <= 1.0
  np.testing.assert_array_equal(labels, digits.target[nearest])


def test_digits_split_is_stratified_and_fixed(digits_dir):
  _, train_y = _records(sources.load("digits", "train", data_dir=digits_dir))
  _, test_y = _records(sources.load("digits", "test", data_dir=digits_dir))
  all_counts = np.bincount(load_digits().target, minlength=10)
  np.testing.assert_allclose(np.bincount(test_y, minlength=10) / 400, all_counts / all_counts.sum(), atol=0.01)
  from cnnjax.data.builders import digits  # pylint: disable=g-import-not-at-top
  labels = load_digits().target
  first, second = digits.split_indices(labels), digits.split_indices(labels)
  np.testing.assert_array_equal(first["test"], second["test"])
  assert len(np.intersect1d(first["train"], first["test"])) == 0


def test_info_of_digits(digits_dir):
  info = sources.info("digits", data_dir=digits_dir)
  assert info.num_classes == 10
  assert info.image_shape == (32, 32, 1)
  assert info.splits == {"train": 1397, "test": 400}
  assert (info.image_key, info.label_key) == ("image", "label")


def test_split_syntax_and_errors(digits_dir):
  assert len(sources.load("digits", "test[:10]+train[:5]", data_dir=digits_dir)) == 15
  with pytest.raises(ValueError, match=r"unknown split 'val'.*\['test', 'train'\]"):
    sources.load("digits", "val", data_dir=digits_dir)
  with pytest.raises(ValueError, match="empty"):
    sources.load("digits", "train[:0]", data_dir=digits_dir)
  with pytest.raises(ValueError, match=r"unknown dataset name 'digitz'.*'digits'"):
    sources.load("digitz", "train", data_dir=digits_dir)


def test_embedded_names_are_the_builder_modules():
  assert "digits" in sources.embedded_names()
  assert all(not n.startswith("_") for n in sources.embedded_names())


def test_default_data_dir_honours_the_environment(monkeypatch, tmp_path):
  monkeypatch.setenv(sources.DATA_DIR_ENV, str(tmp_path))
  assert sources.default_data_dir() == str(tmp_path)
  monkeypatch.delenv(sources.DATA_DIR_ENV)
  assert sources.default_data_dir() == os.path.expanduser("~/.cache/cnnjax/datasets")


def test_partial_directory_is_not_taken_for_prepared(tmp_path):
  # A crashed preparation leaves TFDS's `incomplete.*` folder behind, even with a dataset_info.json.
  partial = tmp_path / "digits" / "incomplete.ABC123_1.0.0"
  partial.mkdir(parents=True)
  (partial / "dataset_info.json").write_text("{}")
  assert len(sources.load("digits", "test", data_dir=str(tmp_path))) == 400


def test_two_processes_preparing_at_once(tmp_path):
  code = ("import sys; from cnnjax.data import sources; "
          "print(len(sources.load('digits', 'train', data_dir=sys.argv[1])))")
  procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
  outs = [p.communicate(timeout=120)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0]
  assert [o.strip().splitlines()[-1] for o in outs] == ["1397", "1397"]
  assert sorted(os.listdir(tmp_path / "digits")) == ["1.0.0"]


def _png(image):
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0]).save(buffer, format="PNG")
  return buffer.getvalue()


class _FakeMnist(mnist.MNIST, skip_registration=True):
  """Writes a tiny 'mnist' in the catalog's on-disk format (PNG bytes), without TensorFlow."""
  name = "mnist"

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=(), dtype=np.object_),
        "label": tfds.features.ClassLabel(num_classes=10),
    }), supervised_keys=("image", "label"))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(5), "test": self._generate_examples(3)}

  def _generate_examples(self, n):
    for i in range(n):
      yield i, {"image": _png(fake_mnist_image(i)), "label": i % 10}


def fake_mnist_image(i):
  return np.random.default_rng(i).integers(0, 256, (28, 28, 1), dtype=np.uint8)


def test_catalog_dataset_loads_from_a_prepared_data_dir(tmp_path):
  _FakeMnist(data_dir=str(tmp_path), file_format="array_record").download_and_prepare(file_format="array_record")
  source = sources.load("mnist", "train", data_dir=str(tmp_path))
  assert len(source) == 5
  got = sorted((int(r["label"]), r["image"].tobytes()) for r in source.__getitems__(range(5)))
  assert got == [(i, fake_mnist_image(i).tobytes()) for i in range(5)]
  info = sources.info("mnist", data_dir=str(tmp_path))
  assert (info.num_classes, info.image_shape, info.splits) == (10, (28, 28, 1), {"train": 5, "test": 3})


def test_missing_catalog_dataset_says_how_to_prepare_it(tmp_path):
  with pytest.raises(FileNotFoundError, match=rf"'cifar10'.*{tmp_path}.*tfds build cifar10 --data_dir=.*array_record"):
    sources.load("cifar10", "train", data_dir=str(tmp_path))


def test_a_truncated_record_file_is_named_with_the_fix_that_works(digits_dir, tmp_path):
  data_dir = tmp_path / "data"
  shutil.copytree(digits_dir, data_dir)
  [path] = data_dir.glob("digits/*/digits-test.array_record-*")
  path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
  with pytest.raises(ValueError, match=rf"dataset 'digits': {path} is damaged or truncated \(.*expected 400\); "
                                       rf"delete {path.parent} so that it is generated again"):
    sources.load("digits", "train+test", data_dir=str(data_dir))
  shutil.rmtree(path.parent)
  assert len(sources.load("digits", "test", data_dir=str(data_dir))) == 400
