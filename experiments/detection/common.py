"""Pieces every detection task shares: sources in one layout, timed prediction, mAP and pictures."""

import os
import time
from typing import Callable, Sequence

import ml_collections
import numpy as np

from cnnjax.data import pipeline, sources, views
from cnnjax.data.builders import shapes
from cnnjax.detection import inputs
from cnnjax.detection.evaluate import evaluate_detections
from cnnjax.viz.detections import save_detections


def detection_sources(config: ml_collections.ConfigDict) -> tuple[Sequence, Sequence, tuple[str, ...]]:
  """(train source, test source, class names) in the `shapes` layout, for `shapes` or a prepared `voc`."""
  data_dir = config.data_dir or None
  train = sources.load(config.dataset, config.train_split, data_dir=data_dir)
  test = sources.load(config.dataset, config.test_split, data_dir=data_dir)
  if config.dataset == "shapes":
    return train, test, shapes.CLASS_NAMES
  if config.dataset.split("/")[0] == "voc":
    fn = lambda r: inputs.voc_record(r, config.image_size)
    return views.MappedSource(train, fn), views.MappedSource(test, fn), inputs.VOC_CLASS_NAMES
  raise ValueError(f"config.dataset must be 'shapes' or a 'voc' config, got {config.dataset!r}")


def image_only(record: dict) -> dict:
  """Keeps the image of a record (boxes vary in number, so they cannot be stacked)."""
  return {"image": record["image"]}


def predict_all(predict: Callable[[dict], dict], source: Sequence, batch_size: int,
                transform: Callable | None = image_only) -> tuple[list[dict], float]:
  """Runs `predict(batch) -> dict of [B, ...] arrays` over a source; returns per-image results and images/s.

  The first batch is run once before timing, so images/s excludes compilation.
  """
  batches = list(pipeline.eval_batches(source, batch_size, transform=transform))
  _block(predict(batches[0]))
  start = time.perf_counter()
  outputs = [_block(predict(b)) for b in batches]
  seconds = time.perf_counter() - start
  per_image = []
  for batch, out in zip(batches, outputs):
    out = {k: np.asarray(v) for k, v in out.items()}
    per_image += [{k: v[i] for k, v in out.items()} for i in np.flatnonzero(batch["mask"])]
  return per_image, len(source) / seconds


def _block(tree: dict) -> dict:
  for v in tree.values():
    getattr(v, "block_until_ready", lambda: None)()
  return tree


def score_and_draw(workdir: str, name: str, source: Sequence, detections: list[dict], class_names: Sequence[str],
                   num_plot_images: int, image_size: int) -> dict[str, float]:
  """mAP of `detections` on `source` and a PNG of the first images in `workdir/plots/<name>.png`."""
  truth = inputs.ground_truth(source, len(detections))
  metrics = evaluate_detections(truth, detections, len(class_names), class_names=class_names,
                                image_size=(image_size, image_size))
  n = min(num_plot_images, len(detections))
  if n:
    save_detections(os.path.join(workdir, "plots", f"{name}.png"), [source[i]["image"] for i in range(n)],
                    detections[:n], truth[:n], class_names=class_names)
  return metrics
