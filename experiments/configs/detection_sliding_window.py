"""Sliding windows on `shapes`: a crop classifier run naively (crop each window) and convolutionally."""

import ml_collections

from experiments.configs import detection_yolo


def get_config() -> ml_collections.ConfigDict:
  config = detection_yolo.get_config()
  config.task = "sliding_window"
  config.window = 32  # crop side; with kernel 5 and 2 stages the last feature map is 5x5, the stride 4
  config.window_features = (16, 32)
  config.window_kernel = 5
  config.window_hidden = (128,)
  config.scales = (1.0, 1.5)  # the image is resized by each scale, so smaller objects fill a window
  config.num_crops = 8000
  config.naive_eval_limit = 50  # the naive detector is slow: time it on the first N test images
  config.score_threshold = 0.3
  config.batch_size = 64
  config.eval_batch_size = 25
  config.num_steps = 800
  config.optimizer.learning_rate = 2e-3
  config.optimizer.warmup_steps = 50
  config.checkpoint_every = 400
  return config
