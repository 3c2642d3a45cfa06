"""Why convolutions (issue 21, item 3): LeNet-5 against a fully connected net of the same capacity.

  python -m experiments.claims.why_convolutions --workdir=/tmp/why_conv [--config.claim.seeds="(0,)"]

For each `claim.examples_per_class` N and seed (the seed also draws the N training digits of each class), trains
each of `claim.models` with one recipe and no augmentation in `workdir/<model>_n<N>_s<seed>`, then measures
- parameters, training and test accuracy;
- translation equivariance of LeNet-5's activations (largest N, first seed): the activation of a shifted image
  against the shifted activation, as a relative error over the positions both define; a layer of cumulative
  stride S is compared with its map shifted by shift / S (truncated), so odd shifts after a pool are not exact;
- translation invariance: test accuracy, and how often the prediction stays what it was unshifted, for test images
  moved by 0..`claim.max_shift` pixels (zeros fill in; the mean over right, left, down and up).
Writes `workdir/results.json` and `workdir/plots/why_convolutions.png`.
"""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnjax.data import prepare
from cnnjax.models.intermediates import intermediates
from cnnjax.train import workdir as workdir_lib
from experiments import classification, cli
from experiments.claims import common
from experiments.configs import claims_why_convolutions

# LeNet-5's feature maps and their cumulative stride: conv1, after ReLU and pool1 (what conv2 reads), conv2.
LAYERS = (("conv1", 1), ("conv2.input", 2), ("conv2", 2))


def relative_error(moved: np.ndarray, base: np.ndarray, dy: int, dx: int, stride: int) -> float:
  """|A(shift(x)) - shift(A(x))| / |shift(A(x))| over the positions the shifted map defines (not filled in)."""
  ky, kx = int(dy / stride), int(dx / stride)
  expected, mask = common.shift(base, ky, kx), common.shift(np.ones_like(base), ky, kx)
  return float(np.linalg.norm((moved - expected) * mask) / np.linalg.norm(expected * mask))


def equivariance_errors(model, variables, mean, std, images: np.ndarray, max_shift: int,
                        layers=LAYERS) -> dict[str, list[float]]:
  """`{layer: [relative error at shift 0, 1, ..., max_shift]}`, each the mean over the four directions."""
  preprocess = prepare.make_preprocess(mean, std)
  names = [name for name, _ in layers]
  fn = jax.jit(lambda v, x: intermediates(model, v, preprocess({"image": x})["image"], names))
  base = jax.device_get(fn(variables, images))
  errors = {name: [] for name in names}
  for s in range(max_shift + 1):
    moved = [jax.device_get(fn(variables, common.shift(images, dy * s, dx * s))) for dy, dx in common.DIRECTIONS]
    for name, stride in layers:
      errors[name].append(float(np.mean([
          relative_error(m[name], base[name], dy * s, dx * s, stride) for m, (dy, dx) in zip(moved, common.DIRECTIONS)
      ])))
  return errors


def shift_sweep(trained: common.Trained, max_shift: int) -> tuple[list[float], list[float]]:
  """(test accuracy, fraction of unchanged predictions) at shifts 0..max_shift, means over the four directions."""
  images, labels = trained.test_images, trained.test_labels
  unshifted = np.argmax(trained.probabilities(images), -1)
  accuracy, same = [], []
  for s in range(max_shift + 1):
    preds = [np.argmax(trained.probabilities(common.shift(images, dy * s, dx * s)), -1) for dy, dx in common.DIRECTIONS]
    accuracy.append(float(np.mean([np.mean(p == labels) for p in preds])))
    same.append(float(np.mean([np.mean(p == unshifted) for p in preds])))
  return accuracy, same


def dense_equivalent(trained: common.Trained, layer: str = "conv1") -> tuple[int, int]:
  """(parameters of `layer`, parameters of a dense layer mapping the same input to the same output map)."""
  params = trained.variables["params"][layer]
  x = jnp.zeros((1,) + trained.test_images.shape[1:], jnp.float32)
  out = jax.eval_shape(lambda: intermediates(trained.model, trained.variables, x, [layer])[layer])
  n_in, n_out = int(np.prod(x.shape[1:])), int(np.prod(out.shape[1:]))
  return int(sum(np.size(p) for p in params.values())), n_in * n_out + n_out


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains every (model, N, seed), measures them, writes results.json and the plot; returns the results."""
  common.check_claim(config, claims_why_convolutions.get_config())
  claim = config.claim
  rows = {}
  with workdir_lib.claim(workdir, config, write=jax.process_index() == 0):
    for n in claim.examples_per_class:
      for seed in claim.seeds:
        for model in claim.models:
          kwargs = claim.model_kwargs[model].to_dict() if model in claim.model_kwargs else {}
          cfg = common.variant(config, model=model, model_kwargs=kwargs, examples_per_class=n, seed=seed,
                               batch_size=min(config.batch_size, n * len(config.classes)))
          name = f"{model}_n{n}_s{seed}"
          summary = classification.train_classifier(cfg, os.path.join(workdir, name))
          trained = common.load(cfg, os.path.join(workdir, name))
          shift_accuracy, shift_same = shift_sweep(trained, claim.max_shift)
          rows[name] = dict(model=model, n=n, seed=seed, num_params=summary["num_params"],
                            test_accuracy=summary["test_accuracy"], train_time_s=summary["train_time_s"],
                            train_accuracy=common.accuracy(trained.probabilities(trained.train_images),
                                                           trained.train_labels),
                            shift_accuracy=shift_accuracy, shift_consistency=shift_same)
          if "conv1" in trained.variables["params"] and n == max(claim.examples_per_class) and seed == claim.seeds[0]:
            rows[name]["equivariance"] = equivariance_errors(
                trained.model, trained.variables, trained.mean, trained.std,
                trained.test_images[:claim.equivariance_images], claim.max_shift)
            rows[name]["conv1_params"], rows[name]["conv1_dense_params"] = dense_equivalent(trained)
    results = summarise(rows, claim)
    common.publish(workdir, results, lambda: plot(results, claim, workdir))
  return results


def summarise(rows: dict, claim) -> dict:
  """Flat results: `<model>/n<N>/<metric>` (mean over seeds, and `_std`), shift curves, equivariance by layer."""
  results = {"max_shift": claim.max_shift}
  for model in claim.models:
    for n in claim.examples_per_class:
      group = [r for r in rows.values() if r["model"] == model and r["n"] == n]
      results[f"{model}/num_params"] = group[0]["num_params"]
      for metric in ("train_accuracy", "test_accuracy", "train_time_s"):
        results[f"{model}/n{n}/{metric}"], results[f"{model}/n{n}/{metric}_std"] = common.mean_std(
            [r[metric] for r in group])
      for curve in ("shift_accuracy", "shift_consistency"):
        results[f"{model}/n{n}/{curve}"] = np.mean([r[curve] for r in group], axis=0).round(4).tolist()
  for row in rows.values():
    if "equivariance" in row:
      for layer, errors in row["equivariance"].items():
        results[f"equivariance/{layer}"] = errors
      results["conv1/params"], results["conv1/dense_equivalent_params"] = row["conv1_params"], row["conv1_dense_params"]
  return results


def plot(results: dict, claim, workdir: str) -> str:
  from matplotlib.figure import Figure

  fig = Figure(figsize=(15, 4.2))
  ax_n, ax_shift, ax_eq = fig.subplots(1, 3)
  ns, shifts, largest = list(claim.examples_per_class), np.arange(claim.max_shift + 1), max(claim.examples_per_class)
  for i, model in enumerate(claim.models):
    colour = f"C{i}"
    label = f"{model} ({results[f'{model}/num_params']:,} params)"
    for metric, style in (("test_accuracy", "-o"), ("train_accuracy", ":x")):
      ax_n.errorbar(ns, [results[f"{model}/n{n}/{metric}"] for n in ns],
                    yerr=[results[f"{model}/n{n}/{metric}_std"] for n in ns], fmt=style, color=colour,
                    label=f"{label}, {metric.split('_')[0]}", capsize=3)
    ax_shift.plot(shifts, results[f"{model}/n{largest}/shift_accuracy"], "-o", color=colour, label=f"{model}, accuracy")
    ax_shift.plot(shifts, results[f"{model}/n{largest}/shift_consistency"], "--s", color=colour,
                  label=f"{model}, prediction unchanged")
  ax_n.set(xscale="log", xlabel="training examples per class", ylabel="accuracy", title="same data, same capacity")
  ax_n.set_xticks(ns, [str(n) for n in ns])
  ax_shift.set(xlabel="shift of the test images (pixels)", ylabel="fraction",
               title=f"invariance ({largest} examples per class)")
  for layer, _ in LAYERS:
    if f"equivariance/{layer}" in results:
      ax_eq.plot(shifts, np.maximum(results[f"equivariance/{layer}"], 1e-9), "-o", label=layer)
  ax_eq.set(yscale="log", xlabel="shift (pixels)", ylabel="relative error |A(shift x) - shift A(x)| / |shift A(x)|",
            title="LeNet-5 equivariance (1e-9 = exact)")
  for ax in (ax_n, ax_shift, ax_eq):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  return common.save_figure(fig, workdir, "why_convolutions.png")


if __name__ == "__main__":
  cli.launch(run, config="claims_why_convolutions.py", workdir="workdirs/why_convolutions")
