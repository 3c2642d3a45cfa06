"""Classic networks side by side (issue 21, item 5): accuracy against multiplies, the 1x1 bottleneck, aux heads.

  python -m experiments.claims.classic_networks --workdir=/tmp/classic [--config.claim.width=0.25]

Trains each run of `claim.run_names` (`claim.runs`: a zoo model and its kwargs, every one slimmed by the same
`claim.width`) with one recipe, once per seed of `claim.seeds`, in `workdir/<run>_s<seed>`; then measures
- parameters and multiplies per image (`cnnjax.ops.flops`: conv and dense multiply-adds) at test time, and in
  training, where GoogLeNet's auxiliary heads also run;
- test accuracy and loss, training accuracy (the training images, evaluated as the test ones) and the gap between
  them: the claims "the 1x1 bottleneck does not hurt accuracy" (`googlenet` against `googlenet_no_1x1`) and
  "auxiliary heads regularise" (`googlenet_aux` against `googlenet`).
Writes `workdir/results.json` and `workdir/plots/classic_networks.png`.
"""

import os

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from cnnjax import models
from cnnjax.ops import flops
from cnnjax.train import workdir as workdir_lib
from experiments import classification, cli
from experiments.claims import common
from experiments.configs import claims_classic_networks

METRICS = ("test_accuracy", "test_loss", "train_accuracy", "generalisation_gap", "train_time_s",
           "train_images_per_s")


def check(claim) -> None:
  """Raises ValueError for run names `claim.runs` lacks, or a width that is not > 0."""
  unknown = sorted(set(claim.run_names) - set(claim.runs.keys()))
  if unknown or not claim.run_names:
    raise ValueError(f"config.claim.run_names={tuple(claim.run_names)}: expected names of claim.runs "
                     f"{sorted(claim.runs.keys())}" + (f"; unknown {unknown}" if unknown else ""))
  if not claim.width > 0:
    raise ValueError(f"config.claim.width={claim.width!r}: expected a channel multiplier > 0")


def costs(model, image_shape: tuple[int, ...]) -> dict:
  """Parameters and multiplies per image of `model`: at test time, and in training (auxiliary heads included).

  The init trace builds GoogLeNet's aux heads whatever `train` is, so their layers (`aux*`) count in training only.
  """
  report = flops.count_flops(model, (1,) + tuple(image_shape), train=False)
  aux = sum(layer.multiplies for layer in report.layers if layer.name.startswith("aux"))
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), jax.numpy.zeros((1,) + tuple(image_shape))))
  return {"num_params": models.count_params(params["params"]), "multiplies": report.multiplies - aux,
          "train_multiplies": report.multiplies}


def course_bottleneck_example() -> dict:
  """The course's arithmetic: 28x28x192 to 28x28x32 by a 5x5 conv, directly or after a 1x1 conv to 16 channels."""
  shape = (1, 28, 28, 192)
  direct = flops.count_flops(nn.Conv(32, (5, 5)), shape).multiplies
  reduced = flops.count_flops(nn.Sequential([nn.Conv(16, (1, 1)), nn.Conv(32, (5, 5))]), shape).multiplies
  return {"course_example/multiplies_5x5": direct, "course_example/multiplies_1x1_then_5x5": reduced}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains every (run, seed), measures them, writes results.json and the plot; returns the results."""
  common.check_claim(config, claims_classic_networks.get_config())
  claim = config.claim
  check(claim)
  rows, cost = {}, {}
  with workdir_lib.claim(workdir, config, write=jax.process_index() == 0):
    for name in claim.run_names:
      spec = claim.runs[name]
      for seed in claim.seeds:
        cfg = common.variant(config, model=spec.model, model_kwargs={**spec.kwargs.to_dict(), "width": claim.width},
                             seed=seed)
        run_dir = os.path.join(workdir, f"{name}_s{seed}")
        summary = classification.train_classifier(cfg, run_dir)
        trained = common.load(cfg, run_dir)
        cost[name] = costs(trained.model, trained.test_images.shape[1:])
        train_accuracy = common.accuracy(trained.probabilities(trained.train_images), trained.train_labels)
        rows[name, seed] = dict(test_accuracy=summary["test_accuracy"], test_loss=summary["test_loss"],
                                train_accuracy=train_accuracy,
                                generalisation_gap=train_accuracy - summary["test_accuracy"],
                                train_time_s=summary["train_time_s"],
                                train_images_per_s=summary["train_images_per_s"])
    results = summarise(rows, cost, claim)
    common.publish(workdir, results, lambda: plot(results, claim, workdir))
  return results


def summarise(rows: dict, cost: dict, claim) -> dict:
  """`<run>/<cost>` and `<run>/<metric>` (mean over seeds, and `_std`)."""
  results = {"width": claim.width, "seeds": list(claim.seeds), **course_bottleneck_example()}
  for name in claim.run_names:
    results.update({f"{name}/model": claim.runs[name].model, **{f"{name}/{k}": v for k, v in cost[name].items()}})
    for metric in METRICS:
      results[f"{name}/{metric}"], results[f"{name}/{metric}_std"] = common.mean_std(
          [rows[name, seed][metric] for seed in claim.seeds])
  return results


def plot(results: dict, claim, workdir: str) -> str:
  from matplotlib.figure import Figure
  from matplotlib.ticker import NullFormatter

  fig = Figure(figsize=(13, 4.5))
  ax_cost, ax_acc = fig.subplots(1, 2)
  names = list(claim.run_names)
  for i, name in enumerate(names):
    point = (results[f"{name}/multiplies"], results[f"{name}/test_accuracy"])
    ax_cost.errorbar(*point, yerr=results[f"{name}/test_accuracy_std"], fmt="o", color=f"C{i}", capsize=3)
    ax_cost.annotate(f"{name}\n{results[f'{name}/num_params']:,} params", point, textcoords="offset points",
                     xytext=(6, -4), fontsize=7, color=f"C{i}")
  ax_cost.margins(x=0.3, y=0.1)
  ax_cost.xaxis.set_minor_formatter(NullFormatter())
  ax_cost.set(xscale="log", xlabel="multiplies per image (test time)", ylabel="test accuracy",
              title=f"accuracy against compute (width x{claim.width:g})")
  x = np.arange(len(names))
  for offset, metric in ((-0.2, "train_accuracy"), (0.2, "test_accuracy")):
    ax_acc.bar(x + offset, [results[f"{n}/{metric}"] for n in names], 0.4,
               yerr=[results[f"{n}/{metric}_std"] for n in names], capsize=2, label=metric.split("_")[0])
  ax_acc.set(xticks=x, ylim=(0, 1), ylabel="accuracy", title="training and test accuracy " + (
      f"(mean of {len(claim.seeds)} seeds)" if len(claim.seeds) > 1 else f"(seed {claim.seeds[0]})"))
  ax_acc.set_xticklabels(names, rotation=20, ha="right")
  ax_acc.legend(fontsize=7)
  for ax in (ax_cost, ax_acc):
    ax.grid(alpha=0.3)
  return common.save_figure(fig, workdir, "classic_networks.png")


if __name__ == "__main__":
  cli.launch(run, config="claims_classic_networks.py", workdir="workdirs/classic_networks")
