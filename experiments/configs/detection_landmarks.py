"""Localization plus 4 landmarks (corners, vertices or centre) on `shapes_single`; reports the error in pixels."""

import ml_collections

from experiments.configs import detection_localization


def get_config() -> ml_collections.ConfigDict:
  config = detection_localization.get_config()
  config.task = "landmarks"
  return config
