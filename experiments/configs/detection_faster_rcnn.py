"""Faster R-CNN on `shapes`: an RPN over 3 k-means anchors at each cell of the 24x24 feature map, Fast R-CNN's head."""

import ml_collections

from experiments.configs import detection_fast_rcnn


def get_config() -> ml_collections.ConfigDict:
  config = detection_fast_rcnn.get_config()
  config.task = "faster_rcnn"
  config.num_anchors = 3  # k-means (w, h) on the training boxes, placed at every feature-map cell
  config.rpn_hidden = 64  # channels of the RPN's 3x3 conv
  config.rpn_batch = 64  # anchors sampled an image for the RPN loss, at most half positive
  config.rpn_fg_iou = 0.7  # an anchor is positive at this IoU with a truth box (or as a box's best anchor)
  config.rpn_bg_iou = 0.3  # and negative below this
  config.pre_nms_topk = 300  # anchors of highest objectness decoded before NMS
  config.rpn_nms_iou_threshold = 0.7
  config.rpn_weight = 1.0
  config.num_test_proposals = 64  # proposals kept after NMS, in training and at test time
  config.num_steps = 1000  # two stages trained jointly: the head sees good proposals only once the RPN has learned
  return config
