"""Classification with localization (and landmarks) on `shapes_single`: box IoU, landmark error, images/s."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnjax import models, train
from cnnjax.data import pipeline, sources, views
from cnnjax.data.builders import shapes_single
from cnnjax.detection import inputs
from cnnjax.detection.boxes import box_convert, box_iou
from cnnjax.detection.losses import landmark_loss, localization_loss
from experiments.detection import common, config_checks
from cnnjax.viz.detections import save_detections


def make_loss_fn(with_landmarks: bool):
  """`(outputs, batch) -> (loss, metrics)`: localization loss, plus the landmark loss where asked."""

  def loss_fn(outputs, batch):
    box = box_convert(batch["box"], "xyxy", "cxcywh")
    loss, metrics = localization_loss(outputs, batch["has_object"], batch["label"], box)
    if with_landmarks:
      present = batch["landmark_mask"] * batch["has_object"][:, None]
      extra, more = landmark_loss(outputs, batch["landmarks"], present)
      loss, metrics = loss + extra, {**metrics, **more}
    return loss, metrics

  return loss_fn


def batch_metrics(outputs: dict, batch: dict, image_size: int) -> dict[str, np.ndarray]:
  """Per-image measures: objectness/class correctness, box IoU, landmark pixel error sum and count."""
  present = np.asarray(batch["has_object"]).astype(bool)
  pred_box = box_convert(outputs["box"], "cxcywh", "xyxy")
  iou = jax.vmap(lambda p, t: box_iou(p[None], t[None])[0, 0])(pred_box, batch["box"])
  out = {"present": present, "objectness_ok": (np.asarray(outputs["objectness"]) > 0) == present,
         "class_ok": np.asarray(outputs["logits"]).argmax(-1) == np.asarray(batch["label"]),
         "iou": np.asarray(iou)}
  if "points" in outputs:
    mask = np.asarray(batch["landmark_mask"]).astype(bool) & present[:, None]
    err = np.linalg.norm((np.asarray(outputs["points"]) - np.asarray(batch["landmarks"])) * image_size, axis=-1)
    out["landmark_err_sum"], out["landmark_count"] = (err * mask).sum(1), mask.sum(1)
  return out


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains and evaluates the localization (or landmark) network as configured."""
  train_config = config_checks.check_config(config)  # before any data is read
  data_dir = config.data_dir or None
  train_source = sources.load(config.dataset, config.train_split, data_dir=data_dir)
  test_source = views.limited(sources.load(config.dataset, config.test_split, data_dir=data_dir),
                               config.eval_limit)
  with_landmarks = config.task == "landmarks"
  num_classes = len(shapes_single.CLASS_NAMES)
  model = models.create(config.model, num_classes=num_classes, dtype=jnp.dtype(config.dtype),
                        num_landmarks=shapes_single.NUM_LANDMARKS if with_landmarks else 0, **config.model_kwargs)

  def batches(start_step: int):
    return pipeline.batches(train_source, config.batch_size, seed=config.seed, start_step=start_step)

  def augment_fn(key, batch):
    del key
    return {**batch, "image": inputs.to_float(batch["image"]).astype(jnp.dtype(config.dtype))}

  apply = jax.jit(lambda v, images: model.apply(v, inputs.to_float(images).astype(jnp.dtype(config.dtype))))
  size = shapes_single.IMAGE_SIZE

  def evaluate(state):
    variables = jax.device_get(state.variables)
    rows, images_per_s = common.predict_all(
        lambda b: {**apply(variables, b["image"]), **{f"true_{k}": b[k] for k in b if k != "image"}},
        test_source, config.eval_batch_size, transform=None)
    outputs = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    m = batch_metrics(outputs, {k[5:]: v for k, v in outputs.items() if k.startswith("true_")}, size)
    present = m["present"]
    metrics = {"test_objectness_accuracy": float(m["objectness_ok"].mean()),
               "test_class_accuracy": float(m["class_ok"][present].mean()),
               "test_mean_iou": float(m["iou"][present].mean())}
    if with_landmarks:
      metrics["test_landmark_error_px"] = float(m["landmark_err_sum"].sum() / max(m["landmark_count"].sum(), 1))
    draw(outputs)
    return {**metrics, "test_images_per_s": images_per_s}

  def draw(outputs):
    n = min(config.num_plot_images, len(test_source))
    if not n:
      return
    dets = [{"boxes": np.asarray(box_convert(outputs["box"][i:i + 1], "cxcywh", "xyxy")),
             "scores": 1 / (1 + np.exp(-outputs["objectness"][i:i + 1])),
             "classes": outputs["logits"][i:i + 1].argmax(-1),
             **({"points": outputs["points"][i][outputs["presence"][i] > 0]} if with_landmarks else {})}
            for i in range(n)]
    truth = [{"boxes": test_source[i]["box"][None][:int(test_source[i]["has_object"])]} for i in range(n)]
    save_detections(f"{workdir}/plots/{config.task}.png", [test_source[i]["image"] for i in range(n)], dets, truth,
                    class_names=shapes_single.CLASS_NAMES, score_threshold=0.5)

  result = train.fit(train_config, workdir, model=model, loss_fn=make_loss_fn(with_landmarks), batches=batches,
                     eval_fn=evaluate, augment_fn=augment_fn, experiment_config=config)
  metrics = dict(result.eval_metrics)
  return {"task": config.task, "model": config.model, "dataset": config.dataset,
          "num_params": models.count_params(result.state.params), **metrics,
          "images_per_s": metrics.pop("test_images_per_s")}
