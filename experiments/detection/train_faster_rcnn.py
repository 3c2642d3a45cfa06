"""Faster R-CNN on `shapes`: RPN and RoI head trained jointly with `fit`; mAP, images/s and proposal recall."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnjax import models, train
from cnnjax.data import pipeline, views
from cnnjax.detection import faster_rcnn, inputs, rcnn
from cnnjax.detection.anchors import kmeans_anchors
from experiments.detection import common, config_checks, train_yolo


def make_model(config: ml_collections.ConfigDict, num_classes: int, anchors: np.ndarray) -> faster_rcnn.FasterRCNN:
  """The configured Faster R-CNN over `anchors` (`[A, 2]` normalised w, h)."""
  return faster_rcnn.FasterRCNN(
      num_classes, anchors=tuple(map(tuple, np.asarray(anchors).tolist())), widths=tuple(config.rcnn_widths),
      pool_size=config.roi_pool_size, hidden=config.rcnn_hidden, rpn_hidden=config.rpn_hidden,
      pre_nms_topk=config.pre_nms_topk, num_proposals=config.num_test_proposals,
      proposal_iou=config.rpn_nms_iou_threshold, rpn_batch=config.rpn_batch, rpn_fg_iou=config.rpn_fg_iou,
      rpn_bg_iou=config.rpn_bg_iou, num_train_rois=config.num_train_rois, fg_fraction=config.fg_fraction,
      dtype=jnp.dtype(config.dtype))


def proposal_recall(dets: list[dict], truth: list[dict], iou: float = 0.5) -> float:
  """Fraction of truth boxes that some valid proposal of their image overlaps by IoU >= `iou`."""
  hit = total = 0
  for d, t in zip(dets, truth):
    if len(t["boxes"]):
      _, _, best = rcnn.label_proposals(t["boxes"], d["rois"][d["roi_valid"]], np.zeros(int(d["roi_valid"].sum())))
      hit, total = hit + int(np.sum(best >= iou)), total + len(t["boxes"])
  return hit / max(total, 1)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains and evaluates Faster R-CNN as configured; returns mAP@0.5, mAP@0.5:0.95 and images/s."""
  train_config = config_checks.check_config(config)  # before any data is read
  train_source, test_source, class_names = common.detection_sources(config)
  test_source = views.limited(test_source, config.eval_limit)
  anchors, anchor_iou = kmeans_anchors(train_yolo.train_wh(train_source), config.num_anchors, seed=config.seed)
  model = make_model(config, len(class_names), anchors)
  size, dtype = config.image_size, jnp.dtype(config.dtype)
  init_variables = model.init(jax.random.PRNGKey(config.seed), {"pixels": jnp.zeros((1, size, size, 3), dtype)})
  pad = functools.partial(inputs.pad_objects, max_objects=config.max_objects)

  def batches(start_step: int):
    return pipeline.batches(train_source, config.batch_size, seed=config.seed, start_step=start_step, transform=pad)

  def augment_fn(key, batch):
    batch = inputs.flip_batch(key, batch) if config.flip else {**batch, "image": inputs.to_float(batch["image"])}
    return {**batch, "image": {"pixels": batch["image"].astype(dtype), "boxes": batch["boxes"],
                               "classes": batch["classes"], "valid": batch["valid"]}}

  result = train.fit(train_config, workdir, model=model, loss_fn=lambda out, _: faster_rcnn.faster_rcnn_loss(
      out, rpn_weight=config.rpn_weight), batches=batches, augment_fn=augment_fn, init_variables=init_variables,
                     experiment_config=config)
  variables = jax.device_get(result.state.variables)

  @jax.jit
  def predict(images):
    out = model.apply(variables, {"pixels": inputs.to_float(images).astype(dtype)})
    dets = jax.vmap(lambda o, r, v: rcnn.detections_from_outputs(
        o, r, v, score_threshold=config.score_threshold, iou_threshold=config.nms_iou_threshold,
        max_detections=config.max_detections))(out, out["rois"], out["roi_valid"])
    return {**dets, "rois": out["rois"], "roi_valid": out["roi_valid"]}

  dets, images_per_s = common.predict_all(lambda b: predict(b["image"]), test_source, config.eval_batch_size)
  metrics = common.score_and_draw(workdir, "faster_rcnn", test_source, dets, class_names, config.num_plot_images,
                                  size)
  return {"task": "faster_rcnn", "dataset": config.dataset, "num_params": models.count_params(variables["params"]),
          "anchors": anchors.tolist(), "anchor_mean_iou": anchor_iou, **metrics, "images_per_s": images_per_s,
          "proposal_recall50": proposal_recall(dets, inputs.ground_truth(test_source, len(dets))),
          "train_time_s": result.train_time_s, "train_images_per_s": result.train_images_per_s}
