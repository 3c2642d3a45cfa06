"""Siamese binary classification: logistic regression on |f_i - f_j| with sigmoid cross-entropy."""

from experiments.configs import embedding_default


def get_config():
  config = embedding_default.get_config()
  config.loss.name = "binary"
  config.model_kwargs.pair_head = "l1"  # 'chi2' for the chi-square form (then the embedding is non-negative)
  return config
