"""Batch-hard mining: per anchor, the farthest positive and the closest negative."""

from experiments.configs import embedding_default


def get_config():
  config = embedding_default.get_config()
  config.loss.name = "batch_hard"
  return config
