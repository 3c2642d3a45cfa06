"""Digits as identities: train on classes 0-5, verify on the unseen classes 6-9."""

from experiments.configs import embedding_default


def get_config():
  config = embedding_default.get_config()
  config.dataset = "digits"
  config.train_split, config.train_labels = "train", (0, 1, 2, 3, 4, 5)
  # Validation (threshold) and test share the unseen classes but not their images.
  config.val_split, config.val_labels = "train", (6, 7, 8, 9)
  config.test_split, config.test_labels = "test", (6, 7, 8, 9)
  config.p, config.k, config.batch_size = 6, 8, 48
  config.num_steps = 600
  config.val_pairs, config.test_pairs = 1000, 2000
  return config
