"""Transfer learning from a large source task (issue 21, item 2): how much to freeze, against how much data.

  python -m experiments.claims.transfer --workdir=/tmp/transfer [--config.claim.seeds="(0,)"]

Pretrains the model on `claim.source_classes` (every training image) in `workdir/pretrain`, then learns the
target task (`classes`) from N = `claim.examples_per_class` images a class, for each seed:
- `freeze<k>`: the pretrained network with a new `claim.head`, its first k stages frozen (k of
  `claim.freeze_stages`; 0 fine-tunes everything);
- `cached`: the new head trained alone on the frozen trunk's features, computed once (no augmentation);
- `scratch`: the same model and data from a random initialisation.
`claim.learning_rates` overrides the optimizer's rate per method. Each run in `workdir/<method>_n<N>_s<seed>`.
Writes `workdir/results.json` (`<method>/n<N>/test_accuracy`: mean and std over seeds) and
`workdir/plots/transfer.png`.
"""

import os

import jax
import ml_collections
import numpy as np

from cnnjax.train import workdir as workdir_lib
from experiments import classification, cli
from experiments.claims import common
from experiments.configs import claims_transfer


def methods(claim) -> list[str]:
  return [f"freeze{k}" for k in claim.freeze_stages] + ["cached", "scratch"]


def pretrain_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  claim = config.claim
  return common.variant(config, classes=tuple(claim.source_classes), examples_per_class=0,
                        num_steps=claim.pretrain_steps, eval_every=claim.pretrain_steps,
                        checkpoint_every=claim.pretrain_steps)


def target_config(config: ml_collections.ConfigDict, method: str, n: int, seed: int,
                  pretrain_dir: str) -> ml_collections.ConfigDict:
  """The classification config of one target run."""
  claim = config.claim
  cfg = common.variant(config, examples_per_class=n, seed=seed,
                       batch_size=min(config.batch_size, n * len(config.classes)))
  reinit = (f"^params/{claim.head}/",)
  if method == "cached":
    cfg.augment = ()
    cfg.transfer.update(init_from=pretrain_dir, reinit=reinit, cached_head=claim.head)
  elif method.startswith("freeze"):
    cfg.transfer.update(init_from=pretrain_dir, reinit=reinit, freeze_stages=int(method[len("freeze"):]))
  if method in claim.learning_rates:
    cfg.optimizer.learning_rate = claim.learning_rates[method]
  return cfg


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Pretrains, trains every (method, N, seed) on the target task, writes results and plot."""
  common.check_claim(config, claims_transfer.get_config())
  claim = config.claim
  overlap = set(claim.source_classes) & set(config.classes)
  if overlap:
    raise ValueError(f"config.classes (the target) and config.claim.source_classes share classes {sorted(overlap)}: "
                     "transfer is measured on classes the source never saw")
  unknown = set(claim.learning_rates) - set(methods(claim))
  if unknown:
    raise ValueError(f"config.claim.learning_rates names {sorted(unknown)}: expected some of {methods(claim)}")
  rows = {}
  with workdir_lib.claim(workdir, config, write=jax.process_index() == 0):
    pretrain_dir = os.path.join(workdir, "pretrain")
    source = classification.train_classifier(pretrain_config(config), pretrain_dir)
    for n in claim.examples_per_class:
      for seed in claim.seeds:
        for method in methods(claim):
          summary = classification.train_classifier(target_config(config, method, n, seed, pretrain_dir),
                                                    os.path.join(workdir, f"{method}_n{n}_s{seed}"))
          rows[method, n, seed] = summary
    results = {"source/test_accuracy": source["test_accuracy"], "source/train_time_s": source["train_time_s"]}
    for method in methods(claim):
      for n in claim.examples_per_class:
        for metric in ("test_accuracy", "train_time_s"):
          values = [rows[method, n, seed][metric] for seed in claim.seeds]
          results[f"{method}/n{n}/{metric}"], results[f"{method}/n{n}/{metric}_std"] = common.mean_std(values)
    common.publish(workdir, results, lambda: plot(results, claim, workdir))
  return results


def plot(results: dict, claim, workdir: str) -> str:
  from matplotlib.figure import Figure

  fig = Figure(figsize=(6.5, 4.2))
  ax = fig.subplots()
  ns = list(claim.examples_per_class)
  for method in methods(claim):
    mean = np.array([results[f"{method}/n{n}/test_accuracy"] for n in ns])
    std = np.array([results[f"{method}/n{n}/test_accuracy_std"] for n in ns])
    ax.errorbar(ns, mean, yerr=std, marker="o", capsize=3, label=method)
  ax.set(xscale="log", xticks=ns, xticklabels=[str(n) for n in ns], xlabel="target images per class",
         ylabel="target test accuracy",
         title=f"transfer from {len(claim.source_classes)} source classes (mean of {len(claim.seeds)} seeds)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  return common.save_figure(fig, workdir, "transfer.png")


if __name__ == "__main__":
  cli.launch(run, config="claims_transfer.py", workdir="workdirs/transfer")
