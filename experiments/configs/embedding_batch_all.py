"""Batch-all mining: the mean over every valid triplet of the batch with a positive loss."""

from experiments.configs import embedding_default


def get_config():
  config = embedding_default.get_config()
  config.loss.name = "batch_all"
  return config
