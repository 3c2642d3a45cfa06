"""Detection: YOLO on the embedded shapes by default; localization, landmarks, sliding windows, R-CNN by config.

  python -m experiments.detection --workdir=/tmp/yolo
  python -m experiments.detection --config=experiments/configs/detection_fast_rcnn.py --workdir=/tmp/frcnn
  python -m experiments.detection --workdir=/tmp/voc --config.dataset=voc/2007 --config.data_dir=DIR \
      --config.max_objects=42   # a VOC prepared in DIR (array_record), mapped to the shapes layout

`config.task` picks the runner in `cnnjax.detection.tasks`; each trains with
`cnnjax.train.fit` and reports mAP@0.5, mAP@0.5:0.95 and images/s (the
localization and landmark tasks report box IoU and landmark error instead).
"""

import importlib
import os

import jax
import ml_collections
from absl import app, flags
from ml_collections import config_flags

from cnnjax import train

TASKS = {"yolo": "yolo", "localization": "heads", "landmarks": "heads", "sliding_window": "windows",
         "rcnn": "rcnn", "fast_rcnn": "rcnn"}

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "configs", "detection_yolo.py"), "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/detection", "Where checkpoints, metrics and plots go.")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the configured detection task in `workdir` and writes `results.json`."""
  if config.task not in TASKS:
    raise ValueError(f"config.task must be one of {sorted(TASKS)}, got {config.task!r}")
  runner = importlib.import_module(f"cnnjax.detection.tasks.{TASKS[config.task]}")
  results = runner.run(config, workdir)
  if jax.process_index() == 0:
    train.write_results(workdir, results)
  return results


def main(argv):
  del argv
  print(run(_CONFIG.value, _WORKDIR.value))


if __name__ == "__main__":
  app.run(main)
