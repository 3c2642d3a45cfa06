"""Every field of a detection config checked before any data is read or anything compiles.

One `check_config` for every task: the training fields (`TrainConfig`), the
shared dataset, evaluation and NMS fields, and each task's own (anchors and the
model's stride for YOLO, the window for sliding windows, proposals for R-CNN).
Model input sizes are checked with `jax.eval_shape` (a trace, no compilation).
"""

import jax
import jax.numpy as jnp
import ml_collections

from cnnjax import models, train
from cnnjax.data.builders import shapes, shapes_single
from cnnjax.detection import inputs
from cnnjax.detection.sliding_window import feature_size
from cnnjax.train.config import check_int, check_number, fail

TASKS = ("yolo", "localization", "landmarks", "sliding_window", "rcnn", "fast_rcnn", "faster_rcnn")
FAST_RCNN_POOLS = 2  # the 2x2 pools of rcnn.FastRCNN and faster_rcnn.FasterRCNN before RoI pooling


def check_config(config: ml_collections.ConfigDict) -> train.TrainConfig:
  """Checks a detection config (any task) and returns its training config; raises ValueError naming the field."""
  if config.task not in TASKS:
    fail("task", config.task, f"one of {TASKS}")
  train_config = train.TrainConfig.from_config(config)
  check_int("image_size", config.image_size, 1)
  for field, minimum in (("eval_batch_size", 1), ("eval_limit", 0), ("num_plot_images", 0)):
    check_int(field, config[field], minimum)
  if config.task in ("localization", "landmarks"):
    _check_localization(config)
    return train_config
  num_classes = _check_dataset(config)
  check_number("score_threshold", config.score_threshold, 0.0, 1.0, closed_high=True)
  check_number("nms_iou_threshold", config.nms_iou_threshold, 0.0, 1.0, closed_high=True)
  check_int("max_detections", config.max_detections, 1)
  {"yolo": _check_yolo, "sliding_window": _check_sliding_window, "rcnn": _check_rcnn,
   "fast_rcnn": _check_rcnn, "faster_rcnn": _check_faster_rcnn}[config.task](config, num_classes)
  return train_config


def _check_dataset(config) -> int:
  """`shapes` at its own size or a `voc` config resized to `image_size`; returns the number of classes."""
  if config.dataset == "shapes":
    if config.image_size != shapes.IMAGE_SIZE:
      fail("image_size", config.image_size, f"{shapes.IMAGE_SIZE}, the size of the 'shapes' images")
    return len(shapes.CLASS_NAMES)
  if config.dataset.split("/")[0] == "voc":
    return len(inputs.VOC_CLASS_NAMES)
  fail("dataset", config.dataset, f"'shapes' or a 'voc' config (e.g. 'voc/2007') for task={config.task!r}")


def _check_model(config, field: str, size: int, **kwargs) -> tuple:
  """The output shape of the configured zoo model on a `size` x `size` batch, traced without compiling."""
  if config.model not in models.list_models():
    fail("model", config.model, f"one of {models.list_models()}")
  try:
    model = models.create(config.model, dtype=jnp.dtype(config.dtype), **kwargs, **config.model_kwargs)
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    out = jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x, train=False)[0], x)
  except (ValueError, TypeError) as e:
    fail(field, size, f"an input size model={config.model!r} with model_kwargs={dict(config.model_kwargs)} "
         f"takes ({e})")
  return jax.tree.leaves(out)[0].shape


def _check_localization(config) -> None:
  if config.dataset != "shapes_single":
    fail("dataset", config.dataset, f"'shapes_single' for task={config.task!r}")
  if config.image_size != shapes_single.IMAGE_SIZE:
    fail("image_size", config.image_size, f"{shapes_single.IMAGE_SIZE}, the size of the 'shapes_single' images")
  landmarks = shapes_single.NUM_LANDMARKS if config.task == "landmarks" else 0
  _check_model(config, "image_size", config.image_size, num_classes=len(shapes_single.CLASS_NAMES),
               num_landmarks=landmarks)


def _check_yolo(config, num_classes: int) -> None:
  check_int("num_anchors", config.num_anchors, 1)
  check_int("max_objects", config.max_objects, 1)
  if config.dataset == "shapes" and config.max_objects < shapes.MAX_OBJECTS:
    fail("max_objects", config.max_objects,
         f">= {shapes.MAX_OBJECTS}, the most objects of a 'shapes' image (fewer drops truth boxes)")
  check_int("pre_nms_topk", config.pre_nms_topk, 1)
  for field in ("lambda_coord", "lambda_noobj"):
    check_number(field, config[field], 0.0, float("inf"))
  check_number("ignore_iou", config.ignore_iou, 0.0, 1.0, closed_high=True)
  size = config.image_size
  shape = _check_model(config, "image_size", size, num_classes=num_classes, num_anchors=config.num_anchors)
  grid = shape[1]
  if size % grid or shape[1] != shape[2]:
    fail("image_size", size, f"a multiple of the model's stride (it gives a {grid}x{shape[2]} grid)")


def _check_sliding_window(config, num_classes: int) -> None:
  del num_classes
  check_int("window", config.window, 1)
  check_int("window_kernel", config.window_kernel, 1)
  check_int("num_crops", config.num_crops, 1)
  check_int("naive_eval_limit", config.naive_eval_limit, 0)
  for field in ("window_features", "window_hidden"):
    widths = tuple(config[field])
    if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
      fail(field, widths, "a non-empty tuple of integers >= 1")
  scales = tuple(config.scales)
  if not scales or any(isinstance(s, bool) or not isinstance(s, (int, float)) or s <= 0 for s in scales):
    fail("scales", scales, "a non-empty tuple of positive image scales")
  try:
    feature_size(config.window, config.window_features, config.window_kernel)
  except ValueError as e:
    fail("window", config.window, f"a window the conv+pool stages halve evenly ({e})")
  smallest = round(config.image_size * min(scales))
  if config.window > smallest:
    fail("window", config.window, f"<= the smallest scaled image ({smallest} = image_size {config.image_size} x "
         f"scale {min(scales)})")


def _check_head(config) -> None:
  """The fields of the R-CNN family's head and of its training RoIs."""
  for field, minimum in (("num_train_rois", 1), ("num_test_proposals", 1), ("rcnn_hidden", 1),
                         ("roi_pool_size", 1)):
    check_int(field, config[field], minimum)
  check_number("fg_fraction", config.fg_fraction, 0.0, 1.0, closed_high=True)
  widths = tuple(config.rcnn_widths)
  if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
    fail("rcnn_widths", widths, "a non-empty tuple of integers >= 1")
  feature_side = config.image_size // 2 ** FAST_RCNN_POOLS
  if config.task != "rcnn" and config.roi_pool_size > feature_side:
    fail("roi_pool_size", config.roi_pool_size,
         f"<= {feature_side}, the side of the feature map (image_size {config.image_size} / {2 ** FAST_RCNN_POOLS})")


def _check_faster_rcnn(config, num_classes: int) -> None:
  del num_classes
  _check_head(config)
  for field, minimum in (("num_anchors", 1), ("max_objects", 1), ("rpn_hidden", 1), ("rpn_batch", 1),
                         ("pre_nms_topk", 1)):
    check_int(field, config[field], minimum)
  if config.dataset == "shapes" and config.max_objects < shapes.MAX_OBJECTS:
    fail("max_objects", config.max_objects,
         f">= {shapes.MAX_OBJECTS}, the most objects of a 'shapes' image (fewer drops truth boxes)")
  for field in ("rpn_fg_iou", "rpn_bg_iou", "rpn_nms_iou_threshold"):
    check_number(field, config[field], 0.0, 1.0, closed_high=True)
  if config.rpn_bg_iou > config.rpn_fg_iou:
    fail("rpn_bg_iou", config.rpn_bg_iou, f"<= rpn_fg_iou ({config.rpn_fg_iou})")
  check_number("rpn_weight", config.rpn_weight, 0.0, float("inf"))


def _check_rcnn(config, num_classes: int) -> None:
  del num_classes
  _check_head(config)
  check_number("ss_scale", config.ss_scale, 0.0, float("inf"))
  check_number("ss_sigma", config.ss_sigma, 0.0, float("inf"))
  if config.ss_scale == 0:
    fail("ss_scale", config.ss_scale, "a positive felzenszwalb scale")
  for field, minimum in (("ss_min_size", 1), ("rcnn_train_images", 1), ("jitter_per_box", 0), ("warp_size", 1)):
    check_int(field, config[field], minimum)
  widths = tuple(config.rcnn_widths)
  if config.task == "rcnn" and config.warp_size < 2 ** len(widths):
    fail("warp_size", config.warp_size, f">= {2 ** len(widths)}, the stride of {len(widths)} conv+pool stages")
