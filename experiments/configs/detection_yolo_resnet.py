"""YOLO on `shapes` with a backbone from the model zoo: ResNet-18's stem and first two stages (stride 8).

The 96x96 images give the same 12x12 grid as the default darknet-like trunk.
"""

import ml_collections

from experiments.configs import detection_yolo


def get_config() -> ml_collections.ConfigDict:
  config = detection_yolo.get_config()
  config.model_kwargs = ml_collections.ConfigDict(
      dict(backbone="resnet18", backbone_kwargs=dict(stage_sizes=(2, 2)), widths=(128,))
  )  # widths[-1]: channels of the 3x3 block between the backbone and the head
  return config
