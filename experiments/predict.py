"""Predict with a trained run on your own image files; writes JSON (and, for detection, annotated PNGs).

  python -m experiments.predict --workdir=/tmp/lenet5 digit.png other.jpg [--checkpoint=latest] [--output=FILE]

Each image is read with Pillow, converted to the run's channels (grey or RGB)
and prepared as the run's evaluation prepares its images: the evaluation
resize / centre crop, or a resize to the model's input size, then the run's
normalisation (channel statistics recomputed from the training data as the run
computed them: the same seeded sample, so the same numbers).

- classification: the top-k classes and every class's probability per image.
- detection (task yolo): boxes (normalised xyxy and pixels of the file),
  scores and classes after NMS, and `<output stem>-<i>-<image stem>.png` with the boxes drawn.
- embedding: each image's embedding; with exactly two images their distance
  and the verdict same / different at the run's verification threshold (chosen
  on the validation identities, as the run chooses it).
- style transfer: the run's optimised image `workdir/result.png` *is* its
  prediction (the pixels are what it trains); this names it. Styling another
  image is another run: `python -m experiments.style_transfer --config.content=IMAGE`.
"""

import copy
import os
from collections.abc import Sequence

import jax
import numpy as np

from cnnjax import embedding as embedding_lib
from cnnjax import transfer
from cnnjax.data import sources, views
from cnnjax.viz.detections import save_detections
from experiments import inference
from experiments.inference import RunError


def predict(workdir: str, paths: Sequence[str], *, checkpoint: str = "latest", output: str | None = None,
            top_k: int = 5, min_score: float = 0.3) -> dict:
  """Predictions of checkpoint `checkpoint` of the run in `workdir` on the image files `paths`.

  Returns (and writes to `output`, default `workdir/predict-<step>.json`) a dict with the workdir,
  experiment, checkpoint step and one entry per image under 'images'.

  Raises:
    RunError: no run in `workdir`, no such checkpoint, no image given, or an image path that does not
      exist or is no image (names it); all are checked before the model is built.
  """
  run = inference.open_run(workdir)
  config = copy.deepcopy(run.config)
  if run.experiment == "style_transfer":
    return _style(run, paths, output)
  if not paths:
    raise RunError("give at least one image file to predict on")
  if run.experiment == "detection" and config.task != "yolo":
    raise RunError(f"predict runs detection task 'yolo'; the run in {run.workdir} is task {config.task!r}")
  for path in paths:  # every file is checked before anything is built
    inference.load_image(path, 3)
  step, variables = inference.restore(run, checkpoint)
  output = output or os.path.join(run.workdir, f"predict-{step}.json")
  predictor = {"classification": _classification, "detection": _detection, "embedding": _embedding}[run.experiment]
  payload = {"workdir": run.workdir, "experiment": run.experiment, "checkpoint": step,
             **predictor(run, config, variables, step, list(paths), output=output, top_k=top_k,
                         min_score=min_score)}
  if jax.process_index() == 0:
    payload["output"] = inference.write_json(output, payload)
  return payload


def prepare_images(paths: Sequence[str], transform, shape: Sequence[int]) -> np.ndarray:
  """uint8 `[N, *shape]`: each file in `shape[-1]` channels, through `transform` (the run's evaluation host
  transform, or None), then resized to `shape[:2]` where it is not that size already."""
  images = []
  for path in paths:
    record = {"image": inference.load_image(path, shape[-1])}
    if transform is not None:
      record = transform.map(record) if hasattr(transform, "map") else transform(record)
    images.append(views.resize_images(tuple(shape[:2]))(record)["image"])
  return np.stack(images)


def _batched(fn, images: np.ndarray, batch_size: int) -> np.ndarray:
  return np.concatenate([np.asarray(fn(images[s:s + batch_size])) for s in range(0, len(images), batch_size)])


def _classification(run, config, variables, step, paths, *, top_k, **_) -> dict:
  from experiments import classification

  setup = classification.build(config)
  model = setup.model
  if config.transfer.cached_head:  # the checkpoint holds the head: put it back on the frozen trunk
    trunk = classification.pretrained(config, model, setup.example)
    variables = transfer.splice_head(trunk, variables["params"], config.transfer.cached_head)
  variables = {k: v for k, v in variables.items() if k in ("params", "batch_stats") and v}
  images = prepare_images(paths, setup.transforms.eval, setup.example.shape[1:])

  @jax.jit
  def probabilities(variables, batch):
    logits = model.apply(variables, setup.preprocess({"image": batch})["image"], train=False)
    logits = logits[0] if isinstance(logits, (tuple, list)) else logits
    return jax.nn.softmax(logits.astype(np.float32), axis=-1)

  probs = _batched(lambda batch: probabilities(variables, batch), images, config.eval_batch_size)
  ids = list(config.classes) or list(range(setup.num_classes))  # model output k is dataset class ids[k]
  names = sources.class_names(config.dataset, data_dir=config.data_dir or None)
  entries = []
  for path, p in zip(paths, probs):
    order = np.argsort(-p, kind="stable")[:top_k]
    entries.append({"path": path, "top_k": [
        {"index": int(k), "class": int(ids[k]), "name": names[ids[k]] if names else str(ids[k]),
         "probability": float(p[k])} for k in order], "probabilities": p.tolist()})
  return {"classes": [int(c) for c in ids], "images": entries}


def _detection(run, config, variables, step, paths, *, output, min_score, **_) -> dict:
  from experiments.detection import train_yolo

  setup = train_yolo.build(config)
  predict_fn = train_yolo.make_predict(setup.model, setup.anchors, config)
  variables = {k: v for k, v in variables.items() if k in ("params", "batch_stats") and v}
  originals = [inference.load_image(path, 3) for path in paths]
  images = prepare_images(paths, None, (config.image_size, config.image_size, 3))
  outputs = [jax.device_get(predict_fn(variables, images[s:s + config.eval_batch_size]))
             for s in range(0, len(images), config.eval_batch_size)]
  dets = {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
  stem = os.path.splitext(output)[0]
  entries = []
  for i, (path, original) in enumerate(zip(paths, originals)):
    det = {k: v[i] for k, v in dets.items()}
    keep = det["valid"] & (det["scores"] >= min_score)
    h, w = original.shape[:2]
    boxes = [{"box": det["boxes"][j].tolist(),
              "box_pixels": (det["boxes"][j] * np.array([w, h, w, h])).round(1).tolist(),
              "score": float(det["scores"][j]), "class": int(det["classes"][j]),
              "name": setup.class_names[int(det["classes"][j])]} for j in np.flatnonzero(keep)]
    picture = f"{stem}-{i}-{os.path.splitext(os.path.basename(path))[0]}.png"
    if jax.process_index() == 0:
      save_detections(picture, [original], [det], class_names=setup.class_names, score_threshold=min_score,
                      columns=1)
    entries.append({"path": path, "detections": boxes, "annotated": picture})
  return {"min_score": min_score, "class_names": list(setup.class_names), "images": entries}


def _embedding(run, config, variables, step, paths, **_) -> dict:
  from experiments import embedding

  setup = embedding.build(config)
  state = inference.eval_state(setup.model, variables, step)
  images = prepare_images(paths, None, setup.data["train"][0].shape[1:])
  vectors = setup.embed(state, images)
  threshold, _ = embedding.thresholds(config, setup.embed(state, setup.data["val"][0]), setup.pairs["val"])
  result = {"threshold": threshold,
            "images": [{"path": path, "embedding": v.tolist()} for path, v in zip(paths, vectors)]}
  if len(paths) == 2:
    distance = float(embedding_lib.pair_distances(vectors, np.array([0]), np.array([1]))[0])
    result["verification"] = {"distance": distance, "threshold": threshold,
                              "same": bool(distance <= threshold)}
  return result


def _style(run, paths: Sequence[str], output: str | None) -> dict:
  if paths:
    raise RunError(
        f"a style-transfer run optimises the pixels of its content image: {run.workdir}/result.png is its "
        f"prediction, and styling {paths[0]} is a new run: python -m experiments.style_transfer "
        f"--workdir=NEW_DIR --config.content={paths[0]} --config.style={run.config.style}")
  result = os.path.join(run.workdir, "result.png")
  if not os.path.isfile(result):
    raise RunError(f"{result}: no styled image yet; the run writes it when its optimisation ends")
  payload = {"workdir": run.workdir, "experiment": run.experiment, "content": run.config.content,
             "style": run.config.style, "styled_image": result,
             "comparison": os.path.join(run.workdir, "plots", "style_transfer.png")}
  payload["output"] = inference.write_json(output or os.path.join(run.workdir, "predict.json"), payload)
  return payload


def main(argv) -> None:
  from absl import flags

  values = flags.FLAGS
  with inference.fatal_on_error():
    payload = predict(values.workdir, argv[1:], checkpoint=values.checkpoint, output=values.output,
                      top_k=values.top_k, min_score=values.min_score)
  print(inference.json_text(payload))


if __name__ == "__main__":
  from absl import app, flags

  inference.define_run_flags()
  flags.DEFINE_string("output", None, "Where the JSON goes (default: WORKDIR/predict-<step>.json); detection "
                      "pictures go beside it.")
  flags.DEFINE_integer("top_k", 5, "Classification: the classes listed per image.")
  flags.DEFINE_float("min_score", 0.3, "Detection: the lowest score listed and drawn.")
  app.run(main)
