"""Sliding windows on `shapes`: train a crop classifier, detect with the naive and the convolutional detector."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from cnnjax import models, train
from cnnjax.data import pipeline, views
from cnnjax.detection import inputs, sliding_window as sw
from cnnjax.detection.boxes import select_detections
from experiments.detection import common, config_checks


def window_model(config: ml_collections.ConfigDict, num_classes: int) -> sw.WindowClassifier:
  """The crop classifier: `num_classes` objects plus background (class 0)."""
  return sw.WindowClassifier(num_classes + 1, features=tuple(config.window_features), kernel=config.window_kernel,
                             hidden=tuple(config.window_hidden))


def make_detectors(config: ml_collections.ConfigDict, num_classes: int, variables: dict, stride: int | None = None):
  """`(naive, convolutional)` jitted detectors: uint8 images `(N, H, W, 3)` -> window logits per scale.

  Both return a list (one entry per `config.scales`) of `(N, nH, nW, num_classes + 1)` logits of the windows
  every `stride` pixels (default: the network's own stride); the benchmark times them against each other.
  """
  model = window_model(config, num_classes)
  stride = stride or 2 ** len(model.features)

  def rescale(images, scale):
    x = inputs.to_float(images)
    n, h, w, c = x.shape
    return jax.image.resize(x, (n, round(h * scale), round(w * scale), c), "bilinear") if scale != 1 else x

  @jax.jit
  def naive(images):
    return [sw.naive_window_scores(model, variables, rescale(images, s), config.window, stride)
            for s in config.scales]

  @jax.jit
  def convolutional(images):
    return [sw.conv_window_scores(model, variables, rescale(images, s), config.window, stride)
            for s in config.scales]

  return naive, convolutional


def make_predict(config: ml_collections.ConfigDict, detector, image_size: int, stride: int | None = None):
  """Window logits at every scale (windows every `stride` pixels) -> fixed-size detections of each image (NMS
  over all scales)."""
  stride = stride or 2 ** len(config.window_features)

  @jax.jit
  def to_detections(logits_per_scale):
    per_scale = []
    for scale, logits in zip(config.scales, logits_per_scale):
      side = round(image_size * scale)
      per_scale.append(jax.vmap(functools.partial(
          sw.window_detections, window=config.window, stride=stride, image_size=(side, side),
          score_threshold=config.score_threshold, iou_threshold=config.nms_iou_threshold,
          max_detections=config.max_detections))(logits))
    merged = {k: jnp.concatenate([d[k] for d in per_scale], axis=1) for k in per_scale[0]}
    scores = jnp.where(merged["valid"], merged["scores"], -1.0)  # empty slots never survive NMS
    return jax.vmap(functools.partial(select_detections, iou_threshold=config.nms_iou_threshold,
                                      max_outputs=config.max_detections, score_threshold=0.0))(
                                          merged["boxes"], scores, merged["classes"])

  return lambda batch: to_detections(detector(batch["image"]))


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains the window classifier on crops, then compares the naive and convolutional detectors."""
  train_config = config_checks.check_config(config)  # before any data is read
  train_source, test_source, class_names = common.detection_sources(config)
  test_source = views.limited(test_source, config.eval_limit)
  crops = sw.make_window_crops(train_source, config.window, config.num_crops, seed=config.seed)
  model = window_model(config, len(class_names))

  def batches(start_step: int):
    return pipeline.batches(crops, config.batch_size, seed=config.seed, start_step=start_step)

  def loss_fn(logits, batch):
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"])}

  def augment_fn(key, batch):
    del key
    return {**batch, "image": inputs.to_float(batch["image"])}

  result = train.fit(train_config, workdir, model=model, loss_fn=loss_fn, batches=batches, augment_fn=augment_fn,
                     experiment_config=config)
  variables = jax.device_get(result.state.variables)
  naive, convolutional = make_detectors(config, len(class_names), variables)
  size = np.asarray(test_source[0]["image"]).shape[0]
  dets, conv_images_per_s = common.predict_all(make_predict(config, convolutional, size), test_source,
                                               config.eval_batch_size)
  naive_source = views.limited(test_source, config.naive_eval_limit)
  naive_dets, naive_images_per_s = common.predict_all(make_predict(config, naive, size), naive_source,
                                                      config.eval_batch_size)
  same = all(np.array_equal(a["classes"], b["classes"]) for a, b in zip(naive_dets, dets))
  metrics = common.score_and_draw(workdir, "sliding_window", test_source, dets, class_names,
                                  config.num_plot_images, size)
  return {"task": "sliding_window", "dataset": config.dataset, "num_params": models.count_params(variables["params"]),
          **metrics, "images_per_s": conv_images_per_s, "naive_images_per_s": naive_images_per_s,
          "naive_equals_convolutional": bool(same),
          "final_train_accuracy": result.train_metrics.get("train_accuracy", float("nan"))}
