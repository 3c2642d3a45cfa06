"""Views of a random-access source: a subset of its classes (relabelled), its first records, its records mapped
through a function, and images resized on the host."""

from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

Record = dict[str, Any]


class ClassSubset(Sequence):
  """The records of `classes` only, labels renumbered 0..len(classes)-1 in the order given.

  With `per_class`, keeps that many examples of each class (chosen with `seed`),
  e.g. for a few-shot fine-tuning task. Pass the split's `labels` (e.g.
  `sources.labels(...)`, which decodes no image); without them every record is read.
  """

  def __init__(self, source: Sequence[Record], classes: Sequence[int], *, per_class: int = 0, seed: int = 0,
               labels: Sequence[int] | None = None):
    classes = [int(c) for c in classes]
    if len(set(classes)) != len(classes) or not classes:
      raise ValueError(f"classes={classes} must be a non-empty list of distinct class ids")
    if labels is None:
      labels = [int(source[i]["label"]) for i in range(len(source))]
    labels = np.asarray(labels)
    if labels.shape != (len(source),):
      raise ValueError(f"labels has shape {labels.shape}, expected one label per record: ({len(source)},)")
    rng = np.random.default_rng(seed)
    chosen = []
    for c in classes:
      members = np.flatnonzero(labels == c)
      if members.size == 0:
        raise ValueError(f"class {c} has no examples in this split (labels present: {sorted(set(labels.tolist()))})")
      if per_class:
        if per_class > members.size:
          raise ValueError(f"per_class={per_class} but class {c} has only {members.size} examples")
        members = np.sort(rng.choice(members, per_class, replace=False))
      chosen.append(members)
    self._indices = np.sort(np.concatenate(chosen))
    self._source = source
    self._relabel = {c: i for i, c in enumerate(classes)}

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index: int) -> Record:
    record = dict(self._source[int(self._indices[index])])
    record["label"] = np.int64(self._relabel[int(record["label"])])
    return record


def resize_images(size: int | Sequence[int], key: str = "image") -> Callable[[Record], Record]:
  """A host transform that resizes `record[key]` (uint8 HWC) to `size` with bilinear filtering."""
  height, width = (size, size) if isinstance(size, int) else tuple(size)

  def transform(record: Record) -> Record:
    image = np.asarray(record[key])
    if image.shape[:2] == (height, width):
      return record
    channels = image.shape[-1]
    pil = Image.fromarray(image[..., 0] if channels == 1 else image)
    resized = np.asarray(pil.resize((width, height), Image.BILINEAR)).reshape(height, width, channels)
    return {**record, key: resized}

  return transform


class MappedSource(Sequence):
  """A random-access source whose records pass through `fn` when read."""

  def __init__(self, source: Sequence[Record], fn: Callable[[Record], Record]):
    self._source, self._fn = source, fn

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, i: int) -> Record:
    return self._fn(self._source[int(i)])


def limited(source: Sequence[Record], limit: int) -> Sequence[Record]:
  """The first `limit` records of a source (all of it when `limit` is 0 or covers it)."""
  if not limit or limit >= len(source):
    return source
  return _Prefix(source, limit)


class _Prefix(Sequence):
  """The first n records of a source."""

  def __init__(self, source: Sequence[Record], n: int):
    self._source, self._n = source, n

  def __len__(self) -> int:
    return self._n

  def __getitem__(self, i: int) -> Record:
    if not 0 <= i < self._n:
      raise IndexError(i)
    return self._source[i]
