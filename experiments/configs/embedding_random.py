"""The baseline: one random (anchor, positive, negative) triplet per batch position, no mining."""

from experiments.configs import embedding_default


def get_config():
  config = embedding_default.get_config()
  config.loss.name = "random"
  return config
