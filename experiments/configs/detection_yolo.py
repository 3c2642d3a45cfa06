"""YOLO (yolo_tiny, 3 k-means anchors) on the embedded `shapes`: the default of experiments.detection."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.task = "yolo"  # yolo | localization | landmarks | sliding_window | rcnn | fast_rcnn | faster_rcnn
  config.seed = 0
  config.dtype = "float32"  # compute dtype; 'bfloat16' on accelerators (params stay float32)

  config.dataset = "shapes"  # or 'voc/2007' prepared in data_dir (mapped to the same layout)
  config.data_dir = ""  # '' = $CNNJAX_DATA_DIR or ~/.cache/cnnjax/datasets
  config.train_split = "train"
  config.test_split = "test"
  config.image_size = 96  # VOC images are resized to this square; shapes are 96x96 already
  config.max_objects = 8  # truth boxes per image after padding
  config.eval_limit = 0  # evaluate on the first N test images; 0 = all

  config.model = "yolo_tiny"
  config.model_kwargs = ml_collections.ConfigDict(dict(widths=(8, 16, 32, 64), deep=True))
  config.num_anchors = 3
  config.lambda_coord = 5.0
  config.lambda_noobj = 0.5
  config.ignore_iou = 0.6  # no objectness penalty for predictions overlapping a truth box by more
  config.flip = True

  config.score_threshold = 0.01
  config.nms_iou_threshold = 0.5
  config.max_detections = 20
  config.pre_nms_topk = 100

  config.batch_size = 32
  config.eval_batch_size = 100
  config.num_steps = 800
  config.optimizer = ml_collections.ConfigDict(
      dict(name="adam", learning_rate=3e-3, schedule="warmup_cosine", warmup_steps=100, weight_decay=0.0,
           momentum=0.9))
  config.skip_nonfinite = False
  config.log_every = 50
  config.eval_every = 500  # test mAP every 500 steps (seconds each)
  config.checkpoint_every = 500
  config.keep_checkpoints = 2
  config.num_plot_images = 8
  return config
