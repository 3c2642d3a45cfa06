"""YOLO: k-means anchors, training with `fit`, jit-compiled detection, mAP, images/s and pictures."""

import dataclasses
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnjax import models, train
from cnnjax.data import pipeline, views
from cnnjax.detection import inputs
from cnnjax.detection.anchors import kmeans_anchors, mean_iou_vs_k
from cnnjax.detection.decode import detect_batch
from cnnjax.detection.losses import yolo_loss
from experiments.detection import common, config_checks
from cnnjax.viz.detections import plot_iou_vs_k


def train_wh(source, limit: int = 2000) -> np.ndarray:
  """(w, h) of the boxes of the first `limit` training records."""
  boxes = np.concatenate([np.asarray(source[i]["boxes"]).reshape(-1, 4) for i in range(min(limit, len(source)))])
  wh = boxes[:, 2:] - boxes[:, :2]
  return wh[(wh > 0).all(1)]


def make_predict(model, anchors: np.ndarray, config: ml_collections.ConfigDict):
  """A jitted `(variables, uint8 images) -> fixed-size detections` function."""

  @jax.jit
  def predict(variables, images):
    raw = model.apply(variables, inputs.to_float(images).astype(jnp.dtype(config.dtype)), train=False)
    return detect_batch(raw, jnp.asarray(anchors), score_threshold=config.score_threshold,
                        iou_threshold=config.nms_iou_threshold, max_detections=config.max_detections,
                        pre_nms_topk=config.pre_nms_topk)

  return predict


@dataclasses.dataclass
class Setup:
  """What training and evaluating YOLO share: sources, k-means anchors and the model."""
  train_source: Any
  test_source: Any  # `config.test_split`, its first `config.eval_limit` images
  class_names: tuple[str, ...]
  wh: np.ndarray  # (w, h) of the training boxes the anchors cluster
  anchors: np.ndarray
  anchor_iou: float
  model: Any


def build(config: ml_collections.ConfigDict) -> Setup:
  """The configured sources, anchors (k-means on the training boxes, seeded: the same every time) and model."""
  train_source, test_source, class_names = common.detection_sources(config)
  test_source = views.limited(test_source, config.eval_limit)
  wh = train_wh(train_source)
  anchors, anchor_iou = kmeans_anchors(wh, config.num_anchors, seed=config.seed)
  model = models.create(config.model, num_classes=len(class_names), num_anchors=config.num_anchors,
                        dtype=jnp.dtype(config.dtype), **config.model_kwargs)
  return Setup(train_source, test_source, class_names, wh, anchors, anchor_iou, model)


def make_evaluator(config: ml_collections.ConfigDict, setup: Setup, workdir: str, num_plot_images: int):
  """`state -> {test_map50, test_map50_95, test_images_per_s, ...}` on `setup.test_source`; draws the first
  `num_plot_images` into `workdir/plots/detections.png`."""
  predict = make_predict(setup.model, setup.anchors, config)

  def evaluate(state):
    variables = jax.device_get(state.variables)
    dets, images_per_s = common.predict_all(lambda b: predict(variables, b["image"]), setup.test_source,
                                            config.eval_batch_size)
    metrics = common.score_and_draw(workdir, "detections", setup.test_source, dets, setup.class_names,
                                    num_plot_images, config.image_size)
    return {**{f"test_{k}": v for k, v in metrics.items()}, "test_images_per_s": images_per_s}

  return evaluate


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains and evaluates YOLO as configured; returns mAP@0.5, mAP@0.5:0.95 and images/s."""
  train_config = config_checks.check_config(config)  # before any data is read
  setup = build(config)
  model, anchors, anchor_iou, train_source = setup.model, setup.anchors, setup.anchor_iou, setup.train_source
  iou_vs_k = mean_iou_vs_k(setup.wh, range(1, config.num_anchors + 3), seed=config.seed)
  plot_iou_vs_k(os.path.join(workdir, "plots", "anchors_iou_vs_k.png"), iou_vs_k)
  pad = functools.partial(inputs.pad_objects, max_objects=config.max_objects)

  def batches(start_step: int):
    return pipeline.batches(train_source, config.batch_size, seed=config.seed, start_step=start_step, transform=pad)

  def loss_fn(raw, batch):
    return yolo_loss(raw, batch["boxes"], batch["classes"], batch["valid"], jnp.asarray(anchors),
                     lambda_coord=config.lambda_coord, lambda_noobj=config.lambda_noobj,
                     ignore_iou=config.ignore_iou)

  def augment_fn(key, batch):
    batch = inputs.flip_batch(key, batch) if config.flip else {**batch, "image": inputs.to_float(batch["image"])}
    return {**batch, "image": batch["image"].astype(jnp.dtype(config.dtype))}

  evaluate = make_evaluator(config, setup, workdir, config.num_plot_images)
  result = train.fit(train_config, workdir, model=model, loss_fn=loss_fn, batches=batches, augment_fn=augment_fn,
                     eval_fn=evaluate, experiment_config=config)
  variables = jax.device_get(result.state.variables)
  return {
      "task": "yolo", "model": config.model, "dataset": config.dataset,
      "num_params": models.count_params(variables["params"]),
      "anchors": anchors.tolist(), "anchor_mean_iou": anchor_iou,
      **{f"anchor_mean_iou_k{k}": v for k, v in iou_vs_k.items()},
      **{k.removeprefix("test_"): v for k, v in result.eval_metrics.items()},
      "train_time_s": result.train_time_s, "train_images_per_s": result.train_images_per_s,
  }
