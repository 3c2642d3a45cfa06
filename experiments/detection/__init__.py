"""Detection: YOLO on the embedded shapes by default; localization, landmarks, sliding windows, the R-CNN family
by config.

  python -m experiments.detection --workdir=/tmp/yolo
  python -m experiments.detection --config=experiments/configs/detection_fast_rcnn.py --workdir=/tmp/frcnn
  python -m experiments.detection --config=experiments/configs/detection_faster_rcnn.py --workdir=/tmp/fasterrcnn
  python -m experiments.detection --workdir=/tmp/voc --config.dataset=voc/2007 --config.data_dir=DIR \
      --config.max_objects=42   # a VOC prepared in DIR (array_record), mapped to the shapes layout

`config.task` picks the runner (a `train_*` module of this folder); each trains
with `cnnjax.train.fit` and reports mAP@0.5, mAP@0.5:0.95 and images/s (the
localization and landmark tasks report box IoU and landmark error instead).
"""

import jax
import ml_collections

from cnnjax import train
from cnnjax.train.config import fail
from experiments.detection import (train_faster_rcnn, train_localization, train_rcnn, train_sliding_window,
                                   train_yolo)

RUNNERS = {"yolo": train_yolo, "localization": train_localization, "landmarks": train_localization,
           "sliding_window": train_sliding_window, "rcnn": train_rcnn, "fast_rcnn": train_rcnn,
           "faster_rcnn": train_faster_rcnn}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the configured detection task in `workdir` and writes `results.json`."""
  if config.task not in RUNNERS:
    fail("task", config.task, f"one of {sorted(RUNNERS)}")
  results = RUNNERS[config.task].run(config, workdir)
  if jax.process_index() == 0:
    train.write_results(workdir, results)
  return results
