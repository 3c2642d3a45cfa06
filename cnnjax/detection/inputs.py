"""Detection records in one layout: image, padded normalised `xyxy` boxes, classes and a valid mask.

The embedded `shapes` dataset is already in that layout (unpadded); TFDS `voc`
records are mapped to it (resized image, boxes from `[ymin, xmin, ymax, xmax]`).
"""

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.data.augment import to_float
from cnnjax.data.views import resize_images

Record = dict[str, Any]

VOC_CLASS_NAMES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")


def pad_objects(record: Record, max_objects: int) -> Record:
  """Pads (or truncates) `boxes` and `classes` to `max_objects` rows and adds the bool `valid` mask."""
  boxes = np.asarray(record["boxes"], np.float32).reshape(-1, 4)[:max_objects]
  classes = np.asarray(record["classes"], np.int32).reshape(-1)[:max_objects]
  n = len(boxes)
  out = {"image": np.asarray(record["image"]),
         "boxes": np.zeros((max_objects, 4), np.float32), "classes": np.zeros((max_objects,), np.int32),
         "valid": np.arange(max_objects) < n}
  out["boxes"][:n], out["classes"][:n] = boxes, classes
  return out


def voc_record(record: Record, image_size: int) -> Record:
  """A TFDS `voc` record as a `shapes`-layout record: image resized to a square, boxes `xyxy`."""
  image = resize_images(image_size)({"image": np.asarray(record["image"])})["image"]
  bbox = np.asarray(record["objects"]["bbox"], np.float32).reshape(-1, 4)
  return {"image": image, "boxes": bbox[:, [1, 0, 3, 2]],
          "classes": np.asarray(record["objects"]["label"], np.int64).reshape(-1)}


def ground_truth(source: Sequence[Record], limit: int = 0) -> list[dict]:
  """The `boxes` and `classes` of the first `limit` records (all when 0), for `evaluate_detections`."""
  n = min(limit, len(source)) if limit else len(source)
  out = []
  for i in range(n):
    r = source[i]
    out.append({"boxes": np.asarray(r["boxes"]).reshape(-1, 4), "classes": np.asarray(r["classes"]).reshape(-1)})
  return out


def flip_batch(key: jax.Array, batch: dict) -> dict:
  """Scales images to [0, 1] and flips each image left-right with probability 1/2, boxes with it."""
  image = to_float(batch["image"])
  flip = jax.random.bernoulli(key, 0.5, (image.shape[0],))
  image = jnp.where(flip[:, None, None, None], image[:, :, ::-1], image)
  boxes = batch["boxes"]
  flipped = jnp.stack([1 - boxes[..., 2], boxes[..., 1], 1 - boxes[..., 0], boxes[..., 3]], -1)
  return {**batch, "image": image, "boxes": jnp.where(flip[:, None, None], flipped, boxes)}
