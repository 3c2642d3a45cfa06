"""R-CNN, Fast R-CNN, Faster R-CNN and YOLO on the embedded `shapes` (issue 21, item 6): mAP and images/s.

  python -m experiments.claims.detectors --workdir=/tmp/detectors

Each detector's block is its detection config (`detection_<task>.py`) with the step counts cut so the four
trainings fit in about 10 minutes of 2 CPU cores (BUILD.md gives the measured time); lengthen one with e.g.
`--config.faster_rcnn.num_steps=1200`. All four are tested on the same first `claim.eval_limit` test images.
"""

import ml_collections

from experiments.configs import detection_fast_rcnn, detection_faster_rcnn, detection_rcnn, detection_yolo


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.claim = ml_collections.ConfigDict(dict(
      tasks=("rcnn", "fast_rcnn", "faster_rcnn", "yolo"),  # each trained in workdir/<task>
      eval_limit=200,  # test images every detector is scored and timed on
  ))
  for name, module in (("rcnn", detection_rcnn), ("fast_rcnn", detection_fast_rcnn),
                       ("faster_rcnn", detection_faster_rcnn), ("yolo", detection_yolo)):
    config[name] = module.get_config()
    config[name].eval_every = 0
    config[name].num_plot_images = 4
  for name in ("rcnn", "fast_rcnn"):
    config[name].rcnn_train_images = 400  # selective search on the host, ~50 ms an image
  return config
