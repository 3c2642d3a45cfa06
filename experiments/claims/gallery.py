"""Recognition against a growing gallery (issue 21, faces): 1:K is harder than 1:1, and by how much.

  python -m experiments.claims.gallery --workdir=/tmp/gallery [--config.claim.repeats=10]

Trains the embedding experiment's run in `workdir/embedding` (or resumes it there), restores its checkpoint
and embeds the test identities (never seen in training). For each K of `claim.gallery_sizes`, `claim.repeats`
times (drawn from `seed`): K test identities are enrolled with one random image each, every other test image is
a probe (`cnnjax.embedding.identification_vs_gallery`). Measured at the run's verification threshold (best
accuracy on the validation pairs) and at its strict one (validation pair FAR `recognition_far`):
- top-1 identification of probes of enrolled people (closed set: the nearest entry is theirs; and within the
  threshold too), and the false-accept rate of probes of people not enrolled;
- beside them the 1:1 figures on every pair of test images (`pair_error_rates`) and what they predict if the K
  comparisons erred independently: false accept 1 - (1 - FAR_1)^K, with FAR_1 the pair false-accept rate at
  the threshold; closed-set top-1 (1 - e)^(K-1), with e = 1 - AUC the chance that a different person's image
  is nearer than a same person's, and the mean over same-person distances g of (1 - F(g))^(K-1), F(g) the
  fraction of different-person pairs nearer than g (`predicted_top1`).
Writes `workdir/results.json` and `workdir/plots/gallery.png`.
"""

import math
import os

import jax
import ml_collections
import numpy as np

from cnnjax import embedding as embedding_lib
from cnnjax.train import workdir as workdir_lib
from experiments import cli, embedding, inference
from experiments.claims import common
from experiments.configs import claims_gallery

RUN = "embedding"
LABELS = {"threshold": "verification threshold", "strict": "strict threshold"}


def embed_test(config: ml_collections.ConfigDict, run_dir: str) -> tuple[np.ndarray, np.ndarray, tuple]:
  """(embeddings, identities, test pairs) of the test part, from the latest checkpoint of the run in `run_dir`."""
  run = inference.open_run(run_dir)
  setup = embedding.build(config)
  step, variables = inference.restore(run)
  state = inference.eval_state(setup.model, variables, step, ema_decay=config.get("ema_decay", 0.0))
  images, labels, _ = setup.data["test"]
  return setup.embed(state, images), labels, setup.pairs["test"]


def measure(emb: np.ndarray, labels: np.ndarray, pairs: tuple, thresholds: dict, claim, seed: int) -> dict:
  """Identification against each gallery size and the 1:1 figures with their compounded predictions."""
  sizes = np.asarray(claim.gallery_sizes)
  i, j, same = pairs
  d = embedding_lib.pair_distances(emb, i, j)
  results = {"gallery_sizes": [int(k) for k in sizes], "repeats": int(claim.repeats),
             "test_identities": int(len(np.unique(labels))), "test_images": int(len(labels))}
  for name, t in thresholds.items():
    ident = embedding_lib.identification_vs_gallery(emb, labels, tuple(int(k) for k in sizes), t,
                                                    repeats=claim.repeats, seed=seed)
    pair = embedding_lib.pair_error_rates(emb, labels, t)
    prefix = f"{name}/"
    results[prefix + "threshold"] = float(t)
    for key in ("top1", "top1_std", "top1_at_threshold", "top1_at_threshold_std", "false_accept_rate",
                "false_accept_rate_std"):
      results[prefix + key] = [None if math.isnan(v) else v for v in ident[key]]
    results[prefix + "impostor_probes"], results[prefix + "known_probes"] = ident["impostor_probes"], \
        ident["known_probes"]
    results.update({f"{prefix}pair_{k}": v for k, v in pair.items()})
    results[prefix + "verification_accuracy_at_threshold"] = float(np.mean((d <= t) == same))
    results[prefix + "predicted_false_accept_rate"] = embedding_lib.compounded(
        pair["false_accept_rate"], sizes).tolist()
  predicted = embedding_lib.predicted_top1(emb, labels, sizes)
  results["predicted_top1"], results["predicted_top1_given_genuine"] = predicted["independent"], \
      predicted["given_genuine"]
  return results


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or resumes) the embedding run, embeds the test identities, measures, writes results and plot."""
  common.check_claim(config, claims_gallery.get_config())
  sizes = tuple(config.claim.gallery_sizes)
  if not sizes or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in sizes):
    raise ValueError(f"config.claim.gallery_sizes={sizes}: expected positive integers")
  cfg = common.variant(config)
  embedding.check_config(cfg)  # before any data is read
  with workdir_lib.claim(workdir, config, write=jax.process_index() == 0):
    run_dir = os.path.join(workdir, RUN)
    verification = embedding.run(cfg, run_dir)
    emb, labels, pairs = embed_test(cfg, run_dir)
    thresholds = {"threshold": verification["val_threshold"], "strict": verification["strict_val_threshold"]}
    results = measure(emb, labels, pairs, thresholds, config.claim, config.seed)
    for key in ("verification_accuracy", "verification_accuracy_std", "auc", "val_at_far_1e-3",
                "recognition_top1", "recognition_false_accept_rate", "train_time_s"):
      results[f"verification/{key}"] = verification[key]
    common.publish(workdir, results, lambda: plot(results, workdir))
  return results


def plot(results: dict, workdir: str) -> str:
  from matplotlib.figure import Figure

  fig = Figure(figsize=(12, 4.2))
  ax_top, ax_far = fig.subplots(1, 2)
  ks = np.asarray(results["gallery_sizes"])
  nan = lambda values: np.array([np.nan if v is None else v for v in values], np.float64)
  ax_top.errorbar(ks, results["threshold/top1"], yerr=results["threshold/top1_std"], fmt="-o", color="C0",
                  capsize=3, label="top-1, nearest entry (measured)")
  ax_top.plot(ks, results["predicted_top1"], "--", color="C0", label="(1 - e)^(K-1), e = 1 - AUC of pairs")
  ax_top.plot(ks, results["predicted_top1_given_genuine"], ":", color="C0",
              label="mean over same-person distances g of (1 - F(g))^(K-1)")
  for i, name in enumerate(("threshold", "strict")):
    ax_top.plot(ks, results[f"{name}/top1_at_threshold"], "-s", color=f"C{i + 1}",
                label=f"top-1 and within the {LABELS[name]} ({results[f'{name}/threshold']:.3f})")
  ax_top.axhline(results["verification/verification_accuracy"], color="gray", ls=":",
                 label=f"1:1 verification accuracy ({results['verification/verification_accuracy']:.3f})")
  ax_top.set(xscale="log", xlabel="enrolled identities K (one image each)", ylabel="fraction of enrolled probes",
             title="identification of enrolled people", ylim=(0, 1.02))
  for i, name in enumerate(("threshold", "strict")):
    ax_far.errorbar(ks, nan(results[f"{name}/false_accept_rate"]),
                    yerr=nan(results[f"{name}/false_accept_rate_std"]), fmt="-o", color=f"C{i + 1}", capsize=3,
                    label=f"{LABELS[name]}: measured")
    ax_far.plot(ks, results[f"{name}/predicted_false_accept_rate"], "--", color=f"C{i + 1}",
                label=f"1 - (1 - FAR_1)^K, FAR_1 = {results[f'{name}/pair_false_accept_rate']:.4f}")
  ax_far.set(xscale="log", xlabel="enrolled identities K (one image each)", ylabel="fraction of impostor probes",
             title="false accepts of people not enrolled", ylim=(0, 1.02))
  for ax in (ax_top, ax_far):
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  return common.save_figure(fig, workdir, "gallery.png")


if __name__ == "__main__":
  cli.launch(run, config="claims_gallery.py", workdir="workdirs/gallery")
