"""Fast R-CNN on `shapes`: one conv pass per image, 4x4 RoI max pooling of each selective-search proposal."""

import ml_collections

from experiments.configs import detection_rcnn


def get_config() -> ml_collections.ConfigDict:
  config = detection_rcnn.get_config()
  config.task = "fast_rcnn"
  return config
