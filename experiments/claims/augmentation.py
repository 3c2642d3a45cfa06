"""Augmentation, test-time augmentation and ensembles (issue 21, item 4), on few digits.

  python -m experiments.claims.augmentation --workdir=/tmp/augmentation [--config.claim.seeds="(0,)"]

Trains LeNet-5 on `examples_per_class` digits of each class (one subset for every run: `subset_seed`) once per
augmentation set of `claim.set_names` (`claim.augment_sets`: `cnnjax.data.augment` specs, as the classification
config's `augment`) and per seed of `claim.seeds`, each in `workdir/<set>_s<seed>`. Then every model is evaluated
- plainly: the test image as it is (what training reports);
- by ten-crop (AlexNet): the softmax averaged over the four corner and the centre crops of the test image
  zero-padded by `claim.crop_pad` (the crops random_crop trains on), and their left-right mirrors
  (`augment.ten_crop_average`); and by five-crop, the same without the mirrors;
and `claim.ensemble_size` models of `claim.ensemble_set` (seeds seed, seed+1, ...) are averaged (softmax):
the ensemble's accuracy against its members'. Writes `workdir/results.json` and `workdir/plots/augmentation.png`.
"""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnjax.data import augment, prepare
from cnnjax.train import workdir as workdir_lib
from experiments import classification, cli
from experiments.claims import common
from experiments.configs import claims_augmentation


def crop_average_fn(model, mean, std, pad: int):
  """jitted `(variables, uint8 images) -> (ten-crop, five-crop)` mean softmax outputs, crops of the input's size
  from the images zero-padded by `pad`."""
  preprocess = prepare.make_preprocess(mean, std)

  def fn(variables, images):
    size = images.shape[1:3]
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    probs = lambda x: jax.nn.softmax(model.apply(variables, preprocess({"image": x})["image"]), axis=-1)
    ten = augment.ten_crop_average(probs, padded, size)
    corners = jax.vmap(lambda image: augment.ten_crop(image, size)[:5])(padded)  # (N, 5, h, w, C): no mirrors
    five = probs(corners.reshape((-1,) + corners.shape[2:])).reshape(corners.shape[:2] + (-1,)).mean(axis=1)
    return jnp.stack([ten, five])

  return jax.jit(fn)


def ensemble(member_probs: list[np.ndarray], labels: np.ndarray) -> dict:
  """Accuracy of the mean softmax of the members, of each member, and of the first k members for k = 1.."""
  stacked = np.stack(member_probs)
  return {
      "accuracy": common.accuracy(stacked.mean(axis=0), labels),
      "member_accuracies": [common.accuracy(p, labels) for p in stacked],
      "accuracy_by_size": [common.accuracy(stacked[:k].mean(axis=0), labels) for k in range(1, len(stacked) + 1)],
  }


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains every (augmentation set, seed) and the ensemble's members, evaluates them, writes results and plot."""
  common.check_claim(config, claims_augmentation.get_config())
  claim = config.claim
  if claim.ensemble_set not in claim.set_names:
    raise ValueError(f"config.claim.ensemble_set={claim.ensemble_set!r}: expected one of claim.set_names "
                     f"{tuple(claim.set_names)}")
  runs = [(name, seed) for name in claim.set_names for seed in claim.seeds]
  runs += [(claim.ensemble_set, config.seed + i) for i in range(claim.ensemble_size)
           if (claim.ensemble_set, config.seed + i) not in runs]
  rows, probs, labels = {}, {}, None
  with workdir_lib.claim(workdir, config, write=jax.process_index() == 0):
    for name, seed in runs:
      cfg = common.variant(config, augment=tuple(claim.augment_sets[name]), seed=seed)
      run_dir = os.path.join(workdir, f"{name}_s{seed}")
      summary = classification.train_classifier(cfg, run_dir)
      trained = common.load(cfg, run_dir)
      labels = trained.test_labels
      plain = trained.probabilities(trained.test_images)
      ten, five = _crops(trained, claim.crop_pad)
      probs[name, seed] = plain
      rows[name, seed] = dict(test_accuracy=summary["test_accuracy"], plain_accuracy=common.accuracy(plain, labels),
                              ten_crop_accuracy=common.accuracy(ten, labels),
                              five_crop_accuracy=common.accuracy(five, labels), train_time_s=summary["train_time_s"])
    results = summarise(rows, claim)
    members = [probs[claim.ensemble_set, config.seed + i] for i in range(claim.ensemble_size)]
    results.update({f"ensemble/{k}": v for k, v in ensemble(members, labels).items()})
    results["ensemble/mean_single_accuracy"] = float(np.mean(results["ensemble/member_accuracies"]))
    common.publish(workdir, results, lambda: plot(results, claim, workdir))
  return results


def _crops(trained: common.Trained, pad: int) -> tuple[np.ndarray, np.ndarray]:
  """(ten-crop, five-crop) mean softmax outputs on the test images."""
  fn = crop_average_fn(trained.model, trained.mean, trained.std, pad)
  out = common.batched(lambda v, x: jnp.moveaxis(fn(v, x), 0, 1), trained.variables, trained.test_images, 200)
  return out[:, 0], out[:, 1]


def summarise(rows: dict, claim) -> dict:
  """`<set>/<metric>`: the mean over seeds, and `_std`."""
  results = {}
  for name in claim.set_names:
    group = [row for (n, seed), row in rows.items() if n == name and seed in claim.seeds]
    for metric in group[0]:
      results[f"{name}/{metric}"], results[f"{name}/{metric}_std"] = common.mean_std([r[metric] for r in group])
  return results


def plot(results: dict, claim, workdir: str) -> str:
  from matplotlib.figure import Figure

  fig = Figure(figsize=(13, 4.2))
  ax_sets, ax_ens = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
  names = list(claim.set_names)
  x = np.arange(len(names))
  for i, (metric, label) in enumerate((("plain_accuracy", "plain"), ("five_crop_accuracy", "five-crop"),
                                       ("ten_crop_accuracy", "ten-crop (with mirrors)"))):
    ax_sets.bar(x + (i - 1) * 0.27, [results[f"{n}/{metric}"] for n in names], 0.27,
                yerr=[results[f"{n}/{metric}_std"] for n in names], capsize=2, label=label)
  low = min(results[f"{n}/{m}"] for n in names for m in ("plain_accuracy", "ten_crop_accuracy", "five_crop_accuracy"))
  ax_sets.set(xticks=x, ylim=(max(0.0, low - 0.05), 1.0), ylabel="test accuracy",
              title="training augmentation and test-time crops " + (
                  f"(mean of {len(claim.seeds)} seeds)" if len(claim.seeds) > 1 else f"(seed {claim.seeds[0]})"))
  ax_sets.set_xticklabels(names, rotation=20)
  sizes = np.arange(1, claim.ensemble_size + 1)
  ax_ens.plot(sizes, results["ensemble/accuracy_by_size"], "-o", label="ensemble of the first k (mean softmax)")
  ax_ens.plot(sizes, results["ensemble/member_accuracies"], "x", label="member k alone")
  ax_ens.axhline(results["ensemble/mean_single_accuracy"], ls="--", color="gray", label="mean single model")
  ax_ens.set(xlabel="models (different seeds)", ylabel="test accuracy", title=f"ensemble of {claim.ensemble_set}",
             xticks=sizes)
  for ax in (ax_sets, ax_ens):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  return common.save_figure(fig, workdir, "augmentation.png")


if __name__ == "__main__":
  cli.launch(run, config="claims_augmentation.py", workdir="workdirs/augmentation")
