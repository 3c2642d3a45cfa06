"""R-CNN and Fast R-CNN on selective-search proposals: training with `fit`, mAP and images/s."""

import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnjax import models, train
from cnnjax.data import pipeline, views
from cnnjax.detection import inputs, rcnn
from cnnjax.detection.proposals import pad_proposals, selective_search
from experiments.detection import common, config_checks


def jitter_boxes(boxes: np.ndarray, rng: np.random.Generator, per_box: int) -> np.ndarray:
  """`per_box` random shifts and rescalings (up to 20%) of each box, as extra training proposals."""
  if per_box == 0 or len(boxes) == 0:
    return np.zeros((0, 4), np.float32)
  b = np.repeat(boxes, per_box, axis=0)
  wh = b[:, 2:] - b[:, :2]
  centre = (b[:, :2] + b[:, 2:]) / 2 + rng.uniform(-0.2, 0.2, wh.shape) * wh
  wh = wh * np.exp(rng.uniform(-0.2, 0.2, wh.shape))
  return np.clip(np.concatenate([centre - wh / 2, centre + wh / 2], 1), 0, 1).astype(np.float32)


def proposal_records(source, config: ml_collections.ConfigDict, *, training: bool) -> tuple[list[dict], float]:
  """Records with fixed-size proposals for the first images of `source`, and proposals per second.

  Training records hold `num_train_rois` sampled proposals (selective search,
  truth boxes and jittered truth boxes; at most `fg_fraction` foreground)
  with labels and delta targets; test records hold the first
  `num_test_proposals` selective-search proposals and their valid mask.
  """
  rng = np.random.default_rng(config.seed)
  records, seconds = [], 0.0
  for i in range(len(source)):
    r = source[i]
    image = np.asarray(r["image"])
    start = time.perf_counter()
    props = selective_search(image, scale=config.ss_scale, sigma=config.ss_sigma, min_size=config.ss_min_size)
    seconds += time.perf_counter() - start
    if not training:
      rois, valid = pad_proposals(props, config.num_test_proposals)
      records.append({"image": image, "rois": rois, "valid": valid})
      continue
    boxes = np.asarray(r["boxes"], np.float32).reshape(-1, 4)
    cand = np.concatenate([props, boxes, jitter_boxes(boxes, rng, config.jitter_per_box)])
    labels, deltas, _ = rcnn.label_proposals(cand, boxes, np.asarray(r["classes"]))
    fg, bg = np.flatnonzero(labels > 0), np.flatnonzero(labels == 0)
    n_fg = min(len(fg), int(config.num_train_rois * config.fg_fraction))
    pick = np.concatenate([rng.permutation(fg)[:n_fg], rng.permutation(bg)[:config.num_train_rois - n_fg]])
    rois, valid = pad_proposals(cand[pick], config.num_train_rois)
    pad = lambda a: np.concatenate([a, np.zeros((config.num_train_rois - len(a),) + a.shape[1:], a.dtype)])
    records.append({"image": image, "rois": rois, "valid": valid,
                    "labels": pad(labels[pick]), "deltas": pad(deltas[pick])})
  return records, len(source) / max(seconds, 1e-9)


def _model_input(config, images, rois):
  pixels = inputs.to_float(images).astype(jnp.dtype(config.dtype))
  if config.task == "rcnn":
    return rcnn.warp_batch(pixels, rois, config.warp_size)
  return {"pixels": pixels, "rois": rois}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains R-CNN or Fast R-CNN (by `config.task`) and evaluates it with the YOLO metrics."""
  train_config = config_checks.check_config(config)  # before any data is read
  train_source, test_source, class_names = common.detection_sources(config)
  train_records, _ = proposal_records(views.limited(train_source, config.rcnn_train_images), config, training=True)
  test_source = views.limited(test_source, config.eval_limit)
  test_records, proposals_per_s = proposal_records(test_source, config, training=False)
  kw = dict(num_classes=len(class_names), widths=tuple(config.rcnn_widths), hidden=config.rcnn_hidden,
            dtype=jnp.dtype(config.dtype))
  model = rcnn.RCNN(**kw) if config.task == "rcnn" else rcnn.FastRCNN(**kw, pool_size=config.roi_pool_size)
  sample = train_records[0]
  init_variables = model.init(jax.random.PRNGKey(config.seed),
                              _model_input(config, sample["image"][None], sample["rois"][None]))

  def batches(start_step: int):
    return pipeline.batches(train_records, config.batch_size, seed=config.seed, start_step=start_step)

  def augment_fn(key, batch):
    del key
    return {**batch, "image": _model_input(config, batch["image"], batch["rois"])}

  def loss_fn(outputs, batch):
    return rcnn.rcnn_loss(outputs, batch["labels"], batch["deltas"], batch["valid"])

  result = train.fit(train_config, workdir, model=model, loss_fn=loss_fn, batches=batches, augment_fn=augment_fn,
                     init_variables=init_variables, experiment_config=config)
  variables = jax.device_get(result.state.variables)

  @jax.jit
  def predict(images, rois, valid):
    out = model.apply(variables, _model_input(config, images, rois))
    out = {k: v.reshape(rois.shape[0], rois.shape[1], -1) for k, v in out.items()}
    return jax.vmap(lambda o, r, v: rcnn.detections_from_outputs(
        o, r, v, score_threshold=config.score_threshold, iou_threshold=config.nms_iou_threshold,
        max_detections=config.max_detections))(out, rois, valid)

  dets, images_per_s = common.predict_all(lambda b: predict(b["image"], b["rois"], b["valid"]), test_records,
                                          config.eval_batch_size, transform=None)
  metrics = common.score_and_draw(workdir, config.task, test_source, dets, class_names, config.num_plot_images,
                                  config.image_size)
  return {"task": config.task, "dataset": config.dataset, "num_params": models.count_params(variables["params"]),
          **metrics, "images_per_s": images_per_s, "proposals_per_s": proposals_per_s,
          "end_to_end_images_per_s": 1.0 / (1.0 / images_per_s + 1.0 / proposals_per_s),
          "train_time_s": result.train_time_s, "train_images_per_s": result.train_images_per_s}
