"""R-CNN on `shapes`: selective-search proposals warped to 32x32 and classified one by one."""

import ml_collections

from experiments.configs import detection_yolo


def get_config() -> ml_collections.ConfigDict:
  config = detection_yolo.get_config()
  config.task = "rcnn"
  config.ss_scale = 100.0  # felzenszwalb scale, sigma and min_size of the initial segmentation
  config.ss_sigma = 0.8
  config.ss_min_size = 20
  config.rcnn_train_images = 600  # selective search runs on the host, ~50 ms an image
  config.eval_limit = 200
  config.num_train_rois = 32
  config.fg_fraction = 0.25
  config.jitter_per_box = 4
  config.num_test_proposals = 64
  config.warp_size = 32
  config.roi_pool_size = 4
  config.rcnn_widths = (16, 32, 64)
  config.rcnn_hidden = 128
  config.score_threshold = 0.05
  config.batch_size = 8  # images, each with num_train_rois proposals
  config.eval_batch_size = 20
  config.num_steps = 600
  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 50
  config.eval_every = 0
  config.checkpoint_every = 300
  return config
