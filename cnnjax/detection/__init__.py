"""Detection: boxes and NMS, anchors, YOLO targets/decoding/losses, sliding windows, region proposals, mAP."""

from cnnjax.detection.anchors import kmeans_anchors, mean_iou_vs_k
from cnnjax.detection.boxes import (batched_nms, box_area, box_convert, box_iou, generalized_box_iou, nms,
                                    select_detections, validate_boxes, wh_iou)
from cnnjax.detection.decode import decode, decode_boxes, detect, detect_batch
from cnnjax.detection.evaluate import evaluate_detections
from cnnjax.detection.losses import landmark_loss, localization_loss, yolo_loss
from cnnjax.detection.proposals import crop_and_resize, decode_deltas, encode_deltas, roi_max_pool, selective_search
from cnnjax.detection.sliding_window import conv_window_scores, fc_to_conv, naive_window_scores
from cnnjax.detection.targets import encode_yolo_targets

__all__ = [
    "batched_nms", "box_area", "box_convert", "box_iou", "conv_window_scores", "crop_and_resize", "decode",
    "decode_boxes", "decode_deltas", "detect", "detect_batch", "encode_deltas", "encode_yolo_targets",
    "evaluate_detections", "fc_to_conv", "generalized_box_iou", "kmeans_anchors", "landmark_loss",
    "localization_loss", "mean_iou_vs_k", "naive_window_scores", "nms", "roi_max_pool", "select_detections",
    "selective_search", "validate_boxes", "wh_iou", "yolo_loss",
]
