"""Datasets by name: embedded ones generated offline, TFDS catalog ones from a prepared `data_dir`.

Both kinds are read as random-access `array_record` data sources: `len(source)`
and `source[i]` give dicts of numpy arrays (uint8 HWC images under `'image'`,
the class under `'label'` for the classification sets).
"""

import contextlib
import dataclasses
import fcntl
import functools
import importlib
import os
import pkgutil
import re
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from cnnjax.data import builders

DATA_DIR_ENV = "CNNJAX_DATA_DIR"
DEFAULT_DATA_DIR = "~/.cache/cnnjax/datasets"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a training loop needs to know about a dataset.

  Attributes:
    name: the dataset name as given to `load`.
    num_classes: number of classes of the label, or None when it is no class label.
    image_shape: (H, W, C) of every image, or None where sizes vary.
    splits: split name -> number of examples.
    image_key: record key of the image.
    label_key: record key of the target, or None when the dataset has none.
    channels: channels of the images (also where their sizes vary), or None where unknown.
  """
  name: str
  num_classes: int | None
  image_shape: tuple[int, ...] | None
  splits: dict[str, int]
  image_key: str = "image"
  label_key: str | None = "label"
  channels: int | None = None


def default_data_dir() -> str:
  """`$CNNJAX_DATA_DIR` when set, else `~/.cache/cnnjax/datasets`."""
  return os.path.expanduser(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def embedded_names() -> list[str]:
  """Names of the datasets the package generates itself (the modules in `cnnjax/data/builders/`)."""
  return sorted(m.name for m in pkgutil.iter_modules(builders.__path__) if not m.name.startswith("_"))


@functools.cache
def catalog_names() -> frozenset[str]:
  """Names of the TFDS catalog datasets (loadable once prepared in a data_dir)."""
  return frozenset(tfds.list_builders(with_community_datasets=False))


def load(name: str, split: str, *, data_dir: str | None = None, decode_images: bool = True) -> Any:
  """Returns a random-access data source of one split of a dataset.

  Args:
    name: an embedded name (`embedded_names()`), or a TFDS catalog name, optionally
      with config and version (`'voc/2007'`, `'mnist:3.0.1'`).
    split: a split name, or TFDS split syntax (`'train[:90%]'`, `'train+test'`).
    data_dir: where datasets live; defaults to `default_data_dir()`. Embedded
      datasets are generated there on first use; catalog ones must have been
      prepared there in the `array_record` format.
    decode_images: False leaves encoded image features (`tfds.features.Image`,
      JPEG/PNG) as bytes, for the host transforms of `cnnjax.data.jpeg` to decode
      at a reduced scale, or to read labels without decoding any image.

  Returns:
    A source with `len()` and integer indexing; records are dicts of numpy arrays.
  """
  builder = _builder(name, data_dir)
  _check_split(name, split, builder)
  if builder.info.splits[split].num_examples == 0:
    raise ValueError(f"split {split!r} of dataset {name!r} is empty (in {builder.data_path})")
  _check_files(name, split, builder)
  decoders = None if decode_images else {
      key: tfds.decode.SkipDecoding() for key, feature in builder.info.features.items()
      if isinstance(feature, tfds.features.Image)}
  try:
    return builder.as_data_source(split=split, decoders=decoders or None)
  except NotImplementedError as e:
    raise ValueError(
        f"dataset {name!r} in {builder.data_path} is not stored as array_record (needed for random "
        f"access). Prepare it again into another directory with: {_build_command(name, builder)}") from e


def labels(name: str, split: str, *, data_dir: str | None = None) -> np.ndarray:
  """The label of every record of a split, read one by one without decoding any image."""
  source = load(name, split, data_dir=data_dir, decode_images=False)
  label_key = info(name, data_dir=data_dir).label_key
  if label_key is None:
    raise ValueError(f"dataset {name!r} has no label feature to read")
  return np.array([int(source[i][label_key]) for i in range(len(source))], np.int64)


def info(name: str, *, data_dir: str | None = None) -> DatasetInfo:
  """Returns the classes, image shape, split sizes and record keys of a dataset (prepares embedded ones)."""
  tfds_info = _builder(name, data_dir).info
  features = tfds_info.features
  keys = tfds_info.supervised_keys
  if not (isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys)):
    keys = ("image", "label" if "label" in features else None)  # no (input, target) pair of names
  image_key, label_key = keys
  if image_key not in features:
    raise ValueError(f"dataset {name!r} has no image feature {image_key!r}; features: {sorted(features)}")
  shape = tuple(features[image_key].shape)
  label = features[label_key] if label_key in features else None
  return DatasetInfo(
      name=name,
      num_classes=getattr(label, "num_classes", None),
      image_shape=shape if all(d is not None for d in shape) else None,
      splits={k: v.num_examples for k, v in tfds_info.splits.items()},
      image_key=image_key,
      label_key=label_key,
      channels=shape[-1] if len(shape) == 3 and shape[-1] is not None else None,
  )


def class_names(name: str, *, data_dir: str | None = None) -> tuple[str, ...] | None:
  """The names of a dataset's classes, by label id (None when its target is no class label)."""
  dataset = info(name, data_dir=data_dir)
  features = _builder(name, data_dir).info.features
  label = features[dataset.label_key] if dataset.label_key in features else None
  names = getattr(label, "names", None)
  return tuple(str(n) for n in names) if names else None


def _builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  """A prepared builder for `name`; generates embedded datasets on first use."""
  if not isinstance(name, str) or not name:
    raise ValueError(f"name must be a non-empty dataset name, got {name!r}")
  data_dir = os.path.expanduser(data_dir or default_data_dir())
  base = re.split(r"[/:]", name, maxsplit=1)[0]
  if name in embedded_names():
    return _prepare_embedded(name, data_dir)
  if base in catalog_names():
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
      raise FileNotFoundError(
          f"dataset {name!r} is not prepared in {data_dir} (looked for {builder.data_path}). Nothing is "
          f"downloaded at run time: on a machine with internet run `{_build_command(name, builder)}`, "
          f"then copy {data_dir} here (or point ${DATA_DIR_ENV} / data_dir at it).")
    return builder
  raise ValueError(
      f"unknown dataset name {name!r}: expected one of the embedded datasets {embedded_names()} or a "
      f"TFDS catalog name such as 'mnist', 'fashion_mnist', 'cifar10', 'cifar100', 'imagenette', 'voc', "
      f"'lfw' (all: tfds.list_builders())")


def _prepare_embedded(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
  """Generates an embedded dataset into data_dir unless present; safe with concurrent processes."""
  builder_cls = importlib.import_module(f"{builders.__name__}.{name}").Builder
  builder = builder_cls(data_dir=data_dir, file_format="array_record")
  if builder.is_prepared():
    return builder
  os.makedirs(data_dir, exist_ok=True)
  # TFDS writes into `incomplete.*` and renames when done, so a partial directory never looks
  # prepared; the lock makes a second process wait for the first one instead of racing its rename.
  with _file_lock(os.path.join(data_dir, f".{name}.lock")):
    builder = builder_cls(data_dir=data_dir, file_format="array_record")
    if not builder.is_prepared():
      builder.download_and_prepare(file_format="array_record")
  # A fresh builder reads the split sizes written by whichever process prepared the data.
  return builder_cls(data_dir=data_dir, file_format="array_record")


@contextlib.contextmanager
def _file_lock(path: str):
  with open(path, "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def _check_split(name: str, split: str, builder: tfds.core.DatasetBuilder) -> None:
  known = sorted(builder.info.splits.keys())
  if not isinstance(split, str) or not split.strip():
    raise ValueError(f"split must be a split name of dataset {name!r} such as {known}, got {split!r}")
  for part in split.split("+"):
    base = _split_base(part)
    if base not in known:
      raise ValueError(f"unknown split {base!r} of dataset {name!r} (in {split!r}); known splits: {known}")


def _check_files(name: str, split: str, builder: tfds.core.DatasetBuilder) -> None:
  """Raises ValueError naming a file of `split` that holds fewer records than its dataset info says (truncated)."""
  from array_record.python.array_record_module import ArrayRecordReader  # TFDS's own reader of these files

  for part in {_split_base(part) for part in split.split("+")}:
    split_info = builder.info.splits[part]
    for path, expected in zip(split_info.filepaths, split_info.shard_lengths):
      try:
        reader = ArrayRecordReader(os.fspath(path))
        found = reader.num_records()
        reader.close()
      except Exception as e:  # the reader's errors are plain RuntimeErrors/ValueErrors without the path
        found, why = 0, f"{type(e).__name__}: {e}"
      else:
        why = f"{found} records"
      if found != expected:
        fix = (f"delete {builder.data_path} so that it is generated again" if name in embedded_names() else
               f"prepare it again with: {_build_command(name, builder)}")
        raise ValueError(f"dataset {name!r}: {path} is damaged or truncated ({why}, expected {expected}); {fix}")


def _split_base(part: str) -> str:
  return re.match(r"\s*([^\[\s]*)", part).group(1)


def _build_command(name: str, builder: tfds.core.DatasetBuilder) -> str:
  return f"tfds build {name} --data_dir={builder.data_dir_root} --file_format=array_record"
