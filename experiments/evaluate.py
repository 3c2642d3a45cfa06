"""Evaluate a run's checkpoint on a split without training: the experiment's own evaluation, printed and written.

  python -m experiments.evaluate --workdir=/tmp/lenet5 [--checkpoint=latest|best|STEP] [--split=test] \
      [--output=FILE]

Reads `workdir/config.json` to know the experiment and its config, restores the
checkpoint's parameters (no optimizer state), builds the model and the data the
way the run did (the runner's own `build`), and runs its evaluation on `--split`:
classification -> accuracy and loss; detection (task yolo) -> mAP@0.5 and
mAP@0.5:0.95; embedding -> verification (10-fold accuracy, AUC, VAL@FAR) and
one-shot recognition of that part's identities, at the threshold chosen on the
validation identities. Writes `workdir/evaluate-<split>-<step>.json` by default.
"""

import copy
import os

import jax
import ml_collections
import numpy as np

from cnnjax import embedding as embedding_lib
from cnnjax.data import sources
from cnnjax.train.loop import with_ema
from experiments import inference
from experiments.inference import RunError

# The parts of the embedding experiment (identity-disjoint) by the split names this command takes.
EMBEDDING_PARTS = {"train": "train", "validation": "val", "val": "val", "test": "test"}


def evaluate(workdir: str, *, checkpoint: str = "latest", split: str | None = None,
             output: str | None = None) -> dict:
  """Evaluates checkpoint `checkpoint` of the run in `workdir` on `split` (default: the split the run evaluated).

  Returns (and writes to `output`, default `workdir/evaluate-<split>-<step>.json`) a dict with the
  workdir, experiment, checkpoint step, split and the experiment's metrics.

  Raises:
    RunError: no run in `workdir`, no such checkpoint, an unknown split (lists the known ones), or an
      experiment / task without an evaluation here.
  """
  run = inference.open_run(workdir)
  config = copy.deepcopy(run.config)
  evaluator = _EVALUATORS.get(run.experiment)
  if evaluator is None:
    raise RunError(f"a {run.experiment} run has no evaluation split: its results.json ({run.workdir}/"
                   "results.json) is its evaluation, and its result image is what it predicts")
  split = split or _default_split(run.experiment, config)
  step = inference.select_step(run, checkpoint)  # before any data is read
  metrics = evaluator(run, config, split, step)
  payload = {"workdir": run.workdir, "experiment": run.experiment, "checkpoint": step, "split": split,
             "metrics": metrics}
  if jax.process_index() == 0:
    payload["output"] = inference.write_json(
        output or os.path.join(run.workdir, f"evaluate-{split}-{step}.json"), payload)
  return payload


def _default_split(experiment: str, config: ml_collections.ConfigDict) -> str:
  return {"classification": lambda: config.eval_split, "detection": lambda: config.test_split,
          "embedding": lambda: "test"}[experiment]()


def check_split(config: ml_collections.ConfigDict, split: str) -> None:
  """Raises RunError when `split` is no split of the config's dataset (lists the dataset's splits).

  TFDS split syntax is taken (`'train[:10%]'`, `'train+test'`) as the runners take it.
  """
  known = sorted(sources.info(config.dataset, data_dir=config.data_dir or None).splits)
  if any(part.split("[")[0].strip() not in known for part in split.split("+")):
    raise RunError(f"--split={split!r}: dataset {config.dataset!r} has no such split; its splits: {known}")


def _classification(run, config, split: str, step: int) -> dict:
  from experiments import classification

  check_split(config, split)
  with config.unlocked():
    config.eval_split = split
  setup = classification.build(config)
  model, eval_fn = classification.evaluation(config, setup)
  state = _state(run, model, step)
  eval_fn = with_ema(eval_fn) if state.ema_decay else eval_fn
  return _unprefixed(eval_fn(state))


def _detection(run, config, split: str, step: int) -> dict:
  from experiments.detection import train_yolo

  if config.task != "yolo":
    raise RunError(f"evaluate runs detection task 'yolo'; the run in {run.workdir} is task {config.task!r}: "
                   f"its results.json holds its evaluation")
  check_split(config, split)
  with config.unlocked():
    config.test_split = split
  setup = train_yolo.build(config)
  metrics = train_yolo.make_evaluator(config, setup, run.workdir, num_plot_images=0)(
      _state(run, setup.model, step))
  return _unprefixed(metrics)


def _embedding(run, config, split: str, step: int) -> dict:
  from experiments import embedding

  part = EMBEDDING_PARTS.get(split)
  if part is None:
    raise RunError(f"--split={split!r}: an embedding run evaluates one of its identity-disjoint parts "
                   f"{sorted(EMBEDDING_PARTS)} (dataset splits {config.train_split!r}, {config.val_split!r}, "
                   f"{config.test_split!r})")
  setup = embedding.build(config)
  state = _state(run, setup.model, step)
  images, labels, _ = setup.data[part]
  pairs = setup.pairs.get(part)
  if pairs is None:  # training identities: pairs drawn as for the test part
    pairs = embedding_lib.make_pairs(labels, config.test_pairs, seed=config.seed)
  val = setup.embed(state, setup.data["val"][0]), setup.data["val"][1]
  results = embedding.report(config, None, state, {"val": val, "test": (setup.embed(state, images), labels)},
                             {"val": setup.pairs["val"], "test": pairs})
  return {"part": part, "identities": int(len(np.unique(labels))), "pairs": int(len(pairs[0])), **results}


_EVALUATORS = {"classification": _classification, "detection": _detection, "embedding": _embedding}


def _state(run, model, step: int):
  _, variables = inference.restore(run, str(step))
  return inference.eval_state(model, variables, step, ema_decay=run.config.get("ema_decay", 0.0))


def _unprefixed(metrics: dict) -> dict:
  """{'accuracy', 'loss', 'ema_accuracy', ...}: the evaluators' `test_` prefix names no split here."""
  return {k.replace("test_", "", 1): float(v) for k, v in metrics.items()}


def main(argv) -> None:
  from absl import app, flags

  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  values = flags.FLAGS
  with inference.fatal_on_error():
    payload = evaluate(values.workdir, checkpoint=values.checkpoint, split=values.split, output=values.output)
  print(inference.json_text(payload))


if __name__ == "__main__":
  from absl import app, flags

  inference.define_run_flags()
  flags.DEFINE_string("split", None, "The split to evaluate (default: the one the run evaluated); embedding: "
                      "train | validation | test, the run's identity-disjoint parts.")
  flags.DEFINE_string("output", None, "Where the JSON goes (default: WORKDIR/evaluate-<split>-<step>.json).")
  app.run(main)
