"""Host input of classification: transforms by config, bounded channel statistics, TFDS JPEG records in workers."""

import numpy as np
import pytest

from cnnjax.data import host_input, jpeg, pipeline, sources, views
from experiments.bench import jpeg_dataset


@pytest.fixture(scope="module")
def tiny_jpegs(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("data"))
  return jpeg_dataset.prepare(data_dir, "tiny"), data_dir


def test_channel_stats_use_every_record_up_to_count_then_a_seeded_sample():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (40, 4, 3, 2), dtype=np.uint8)
  images[..., 1] = 255  # a constant channel: its std is floored at 1e-3
  records = [{"image": image} for image in images]
  unit = images.astype(np.float64) / 255
  mean, std = host_input.sample_channel_stats(records, count=40)
  np.testing.assert_allclose(mean, [unit[..., 0].mean(), 1.0], rtol=1e-6)
  np.testing.assert_allclose(std, [unit[..., 0].std(), 1e-3], rtol=1e-5)
  a, b, c = (host_input.sample_channel_stats(records, count=10, seed=s)[0] for s in (1, 1, 2))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert abs(a[0] - unit[..., 0].mean()) < 0.05  # a sample of a quarter of uniform noise
  resized = host_input.sample_channel_stats(records, lambda r: {"image": r["image"][:2]}, count=40)[0]
  np.testing.assert_allclose(resized[0], unit[:, :2, ..., 0].mean(), rtol=1e-6)
  with pytest.raises(ValueError, match="deterministic transform"):
    host_input.sample_channel_stats(records, jpeg.InceptionCrop(8))


def test_host_transforms_by_config():
  none = host_input.host_transforms(0)
  assert none.train is None and none.eval is None and not none.encoded_images
  recipe = host_input.host_transforms(224, crop="inception", scale=(0.2, 1.0), eval_resize=288, channels=1)
  assert recipe.encoded_images and recipe.train == jpeg.InceptionCrop(224, (0.2, 1.0), (3 / 4, 4 / 3), channels=1)
  assert recipe.eval == jpeg.CentreCrop(224, 288, channels=1)
  with pytest.raises(ValueError, match="crop='random'"):
    host_input.host_transforms(224, crop="random")
  with pytest.raises(ValueError, match="needs image_size > 0"):
    host_input.host_transforms(0, crop="inception")


def test_tfds_jpeg_records_decode_in_workers_and_errors_name_the_record(tiny_jpegs):
  name, data_dir = tiny_jpegs
  source = sources.load(name, "validation", data_dir=data_dir, decode_images=False)
  np.testing.assert_array_equal(sources.labels(name, "validation", data_dir=data_dir),
                                [int(source[i]["label"]) for i in range(len(source))])
  crop = jpeg.CentreCrop(24)
  inline = list(pipeline.eval_batches(source, 4, transform=crop))
  workers = pipeline.eval_batches(source, 4, transform=crop, worker_count=1)
  try:
    for a, b in zip(inline, workers, strict=True):
      np.testing.assert_array_equal(a["image"], b["image"])
  finally:
    workers.close()
  assert inline[0]["image"].shape == (4, 24, 24, 3)
  with pytest.raises(ValueError, match="dataset 'synthetic_jpegs/tiny/1.0.0' split 'validation' record 0 could not"):
    next(pipeline.eval_batches(source, 4, transform=lambda r: jpeg.CentreCrop(8).map({"image": b"x"})))


def test_class_subset_takes_the_labels_instead_of_reading_every_record():
  class Counting(list):
    reads = 0

    def __getitem__(self, i):
      Counting.reads += 1
      return list.__getitem__(self, i)

  source = Counting({"image": np.zeros((2, 2, 1), np.uint8), "label": i % 4} for i in range(12))
  subset = views.ClassSubset(source, [3, 1], labels=[i % 4 for i in range(12)])
  assert Counting.reads == 0 and len(subset) == 6
  assert [int(subset[i]["label"]) for i in range(6)] == [1, 0, 1, 0, 1, 0]  # classes 1, 3 renumbered 1, 0
  with pytest.raises(ValueError, match=r"labels has shape \(3,\), expected one label per record: \(12,\)"):
    views.ClassSubset(source, [1], labels=[0, 1, 2])
