"""What the claims runners share: variants of an experiment config, trained classifiers read back, predictions."""

import dataclasses
import os
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from cnnjax import train
from cnnjax.data import host_input as host_input_lib
from cnnjax.data import prepare
from experiments import classification


def check_claim(config: ml_collections.ConfigDict, default: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the `claim` fields of the runner's `default` config that `config` lacks."""
  missing = sorted(set(default.claim.keys()) - set(config.claim.keys())) if "claim" in config else ["claim"]
  if missing:
    raise ValueError(f"config has no claim field(s) {missing}: start from this runner's config "
                     f"(experiments/configs/claims_*.py) and override fields with --config.claim.<field>=...")


def variant(config: ml_collections.ConfigDict, **fields: Any) -> ml_collections.ConfigDict:
  """The experiment config of a claims run: `config` without its `claim` block, top-level `fields` replaced."""
  out = ml_collections.ConfigDict(config.to_dict())
  del out["claim"]
  for key, value in fields.items():
    out[key] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value
  return out


@dataclasses.dataclass
class Trained:
  """A trained classifier read back from its workdir, with the images it was trained and tested on (uint8)."""
  model: Any
  variables: dict
  mean: np.ndarray
  std: np.ndarray
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray

  def probabilities(self, images: np.ndarray) -> np.ndarray:
    if not hasattr(self, "_fn"):
      self._fn = softmax_fn(self.model, self.mean, self.std)
    return batched(self._fn, self.variables, images)


def load(config: ml_collections.ConfigDict, workdir: str) -> Trained:
  """The model `config` trained in `workdir`, and its (un-augmented) training and test images."""
  setup = classification.build(config)
  arrays = []
  for source in (setup.train_source, setup.eval_source):
    arrays += [host_input_lib.sample_images(source, setup.transforms.eval, count=len(source)),
               np.array([int(source[i]["label"]) for i in range(len(source))])]
  return Trained(setup.model, train.load_variables(workdir), setup.mean, setup.std, *arrays)


def softmax_fn(model, mean: np.ndarray, std: np.ndarray):
  """jitted `(variables, uint8 images) -> softmax outputs`, the images normalised as in training."""
  preprocess = prepare.make_preprocess(mean, std)
  return jax.jit(lambda v, x: jax.nn.softmax(model.apply(v, preprocess({"image": x})["image"]), axis=-1))


def batched(fn, variables, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
  """`fn(variables, images)` in fixed-size batches (the last one padded), so it compiles once."""
  size, out = batch_size, []
  for start in range(0, len(images), size):
    part = images[start:start + size]
    padded = np.concatenate([part, np.repeat(part[:1], size - len(part), axis=0)]) if len(part) < size else part
    out.append(np.asarray(fn(variables, padded))[:len(part)])
  return np.concatenate(out)


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
  return float(np.mean(np.argmax(probs, -1) == labels))


def shift(images: Any, dy: int, dx: int) -> np.ndarray:
  """`images` (N, H, W, C) moved down by `dy` and right by `dx` pixels (negative: up / left), zeros filling in."""
  images = np.asarray(images)
  h, w = images.shape[1:3]
  out = np.zeros_like(images)
  out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
      images[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
  return out


DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0))  # right, left, down, up


def publish(workdir: str, results: dict, draw: Callable[[], Any]) -> None:
  """From process 0 only (every process holds the same results): `draw()` the claim's figure, write results.json."""
  if jax.process_index() == 0:
    draw()
    train.write_results(workdir, results)


def save_figure(fig, workdir: str, name: str) -> str:
  os.makedirs(os.path.join(workdir, "plots"), exist_ok=True)
  path = os.path.join(workdir, "plots", name)
  fig.savefig(path, dpi=100, bbox_inches="tight")
  return path


def mean_std(values) -> tuple[float, float]:
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std())

