"""Anchor boxes (issue 21, item 6): YOLO's mAP against the number of k-means anchors, on the embedded `shapes`.

  python -m experiments.claims.anchors --workdir=/tmp/anchors [--config.claim.anchor_counts="(1,3)"]

Trains the detection experiment's YOLO (`experiments.detection`, task `yolo`) once per count of
`claim.anchor_counts`, each in `workdir/k<count>` with anchors from seeded k-means on the training boxes, and
reports its test mAP@0.5, mAP@0.5:0.95 (also per class), the k-means mean IoU and training images/s. To say how
often the claim's case arises, it also counts on the first `claim.collision_images` training images the objects
that share their grid cell with another, and those whose (cell, best anchor) slot another object takes: YOLO's
targets keep one object a slot, so those objects are never trained on. Writes `workdir/results.json` and
`workdir/plots/anchors_map.png`.
"""

import os

import jax
import ml_collections
import numpy as np

from cnnjax import models
from cnnjax.detection.boxes import wh_iou
from cnnjax.train import workdir as workdir_lib
from experiments import cli, detection
from experiments.claims import common
from experiments.configs import claims_anchors
from experiments.detection import common as detection_common

METRICS = ("map50", "map50_95", "anchor_mean_iou", "train_images_per_s", "images_per_s", "train_time_s")


def grid_size(config: ml_collections.ConfigDict) -> int:
  """S of the configured YOLO's S x S output grid."""
  model = models.create(config.model, num_classes=1, num_anchors=1, **config.model_kwargs)
  return config.image_size // model.stride


def image_boxes(source, limit: int) -> list[np.ndarray]:
  """The (normalised xyxy) boxes of each of the first `limit` records, empty ones left out."""
  out = []
  for i in range(min(limit, len(source))):
    boxes = np.asarray(source[i]["boxes"], np.float64).reshape(-1, 4)
    out.append(boxes[(boxes[:, 2:] > boxes[:, :2]).all(1)])
  return out


def collisions(images: list[np.ndarray], anchors: np.ndarray, grid: int) -> dict:
  """Objects of `images` (boxes per image), the fraction sharing a grid cell with another object, and the
  fraction whose (cell, best-IoU anchor) slot a later object of the image takes (dropped from the targets, as
  `encode_yolo_targets` keeps the last)."""
  everything = np.concatenate(images)
  best = np.split(np.argmax(np.asarray(wh_iou(everything[:, 2:] - everything[:, :2], anchors)), axis=1),
                  np.cumsum([len(b) for b in images])[:-1])
  shared = dropped = 0
  for boxes, anchor in zip(images, best):
    cell = np.clip(np.floor((boxes[:, :2] + boxes[:, 2:]) / 2 * grid), 0, grid - 1).astype(int) @ np.array([1, grid])
    slot = cell * len(anchors) + anchor  # as encode_yolo_targets: (row * S + col) * A + best anchor
    later = np.triu(np.ones((len(boxes),) * 2, bool), 1)
    shared += int(np.sum((cell[:, None] == cell[None, :]).sum(1) > 1))
    dropped += int(np.sum(((slot[:, None] == slot[None, :]) & later).any(1)))
  objects = len(everything)
  return {"objects": objects, "shared_cell_fraction": shared / max(objects, 1),
          "dropped_fraction": dropped / max(objects, 1)}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains YOLO with each anchor count, writes results.json and the plot; returns the results."""
  common.check_claim(config, claims_anchors.get_config())
  if config.task != "yolo":
    raise ValueError(f"config.task={config.task!r}: the anchors claim trains YOLO; expected 'yolo'")
  claim = config.claim
  grid = grid_size(config)
  train_source, _, class_names = detection_common.detection_sources(config)
  boxes = image_boxes(train_source, claim.collision_images)
  results = {"anchor_counts": [int(k) for k in claim.anchor_counts], "grid_size": grid,
             "class_names": list(class_names)}
  with workdir_lib.claim(workdir, config, write=jax.process_index() == 0):
    for k in claim.anchor_counts:
      summary = detection.run(common.variant(config, num_anchors=int(k)), os.path.join(workdir, f"k{k}"))
      row = {m: summary[m] for m in METRICS}
      row.update({f"map50/{name}": summary[f"map50/{name}"] for name in class_names})
      row["num_anchors"] = len(summary["anchors"])
      row["anchors"] = summary["anchors"]
      row.update(collisions(boxes, np.asarray(summary["anchors"]), grid))
      results.update({f"k{k}/{key}": value for key, value in row.items()})
    common.publish(workdir, results, lambda: plot(results, workdir))
  return results


def plot(results: dict, workdir: str) -> str:
  from matplotlib.figure import Figure

  ks = results["anchor_counts"]
  fig = Figure(figsize=(12, 4.2))
  ax_map, ax_iou = fig.subplots(1, 2)
  ax_map.plot(ks, [results[f"k{k}/map50"] for k in ks], "-o", label="mAP@0.5")
  ax_map.plot(ks, [results[f"k{k}/map50_95"] for k in ks], "-s", label="mAP@0.5:0.95")
  for i, name in enumerate(results["class_names"]):
    ax_map.plot(ks, [results[f"k{k}/map50/{name}"] for k in ks], ":x", color=f"C{i + 2}", label=f"mAP@0.5 {name}")
  ax_map.set(xlabel="anchors (k-means)", ylabel="test mAP", xticks=ks, title="YOLO on shapes: test mAP vs anchors")
  ax_iou.plot(ks, [results[f"k{k}/anchor_mean_iou"] for k in ks], "-^", color="gray")
  ax_iou.set(xlabel="anchors (k-means)", ylabel="mean best-anchor IoU of the training boxes", xticks=ks,
             title="k-means anchors: how well they fit the boxes")
  k0, s = ks[0], results["grid_size"]
  note = (f"{results[f'k{k0}/objects']} training objects, {s}x{s} grid:\n"
          f"sharing their cell with another: {100 * results[f'k{k0}/shared_cell_fraction']:.2f}%\n"
          "losing their (cell, anchor) slot to another:\n" +
          ", ".join(f"{100 * results[f'k{k}/dropped_fraction']:.2f}% (k={k})" for k in ks))
  ax_iou.text(0.03, 0.97, note, transform=ax_iou.transAxes, ha="left", va="top", fontsize=7,
              bbox=dict(facecolor="white", alpha=0.8, edgecolor="lightgray"))
  for ax in (ax_map, ax_iou):
    ax.grid(alpha=0.3)
  ax_map.legend(fontsize=7)
  return common.save_figure(fig, workdir, "anchors_map.png")


if __name__ == "__main__":
  cli.launch(run, config="claims_anchors.py", workdir="workdirs/anchors")
