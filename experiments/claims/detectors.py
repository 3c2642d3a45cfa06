"""R-CNN, Fast R-CNN, Faster R-CNN and YOLO side by side (issue 21, item 6) on the embedded `shapes`.

  python -m experiments.claims.detectors --workdir=/tmp/detectors [--config.claim.tasks="(faster_rcnn,yolo)"]

Trains each detector of `claim.tasks` through the detection experiment (`experiments.detection`, its config the
runner config's block of that name) in `workdir/<task>`, all scored on the same first `claim.eval_limit` test
images, and tabulates mAP@0.5, mAP@0.5:0.95 (also per class), training images/s and test images/s: the network
alone and end to end, selective search on the host included for R-CNN and Fast R-CNN (Faster R-CNN's proposals
and YOLO's decoding run inside the jitted network). Each run's wall and CPU time and the load average around it
go beside it, as the machine is shared. Writes `workdir/results.json` and `workdir/plots/detectors.png`.
"""

import os
import resource
import time

import jax
import ml_collections

from cnnjax.train import workdir as workdir_lib
from experiments import cli, detection
from experiments.claims import common
from experiments.configs import claims_detectors

LABELS = {"rcnn": "R-CNN", "fast_rcnn": "Fast R-CNN", "faster_rcnn": "Faster R-CNN", "yolo": "YOLO"}
METRICS = ("map50", "map50_95", "num_params", "train_images_per_s")


def timed_run(config: ml_collections.ConfigDict, workdir: str) -> tuple[dict, dict]:
  """`detection.run` and its wall time, this process's user CPU time and the 1-minute load before and after."""
  load, cpu, start = os.getloadavg()[0], resource.getrusage(resource.RUSAGE_SELF).ru_utime, time.perf_counter()
  summary = detection.run(config, workdir)
  return summary, {"wall_s": time.perf_counter() - start,
                   "user_cpu_s": resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu,
                   "load_before": load, "load_after": os.getloadavg()[0]}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains and scores each detector, writes results.json and the plot; returns the results."""
  common.check_claim(config, claims_detectors.get_config())
  claim = config.claim
  unknown = [t for t in claim.tasks if t not in LABELS or t not in config]
  if unknown:
    raise ValueError(f"config.claim.tasks has {unknown}: expected tasks of {sorted(LABELS)} with a config block")
  results = {"tasks": list(claim.tasks), "eval_limit": int(claim.eval_limit)}
  with workdir_lib.claim(workdir, config, write=jax.process_index() == 0):
    for task in claim.tasks:
      task_config = ml_collections.ConfigDict(config[task].to_dict())
      task_config.eval_limit = claim.eval_limit
      summary, timing = timed_run(task_config, os.path.join(workdir, task))
      row = {m: summary[m] for m in METRICS}
      row.update({k: v for k, v in summary.items() if k.startswith("map50/")})
      row["num_steps"], row["batch_size"] = task_config.num_steps, task_config.batch_size
      row["network_images_per_s"] = summary["images_per_s"]
      row["test_images_per_s"] = summary.get("end_to_end_images_per_s", summary["images_per_s"])
      if "proposals_per_s" in summary:
        row["proposals_per_s"] = summary["proposals_per_s"]
      if "proposal_recall50" in summary:
        row["proposal_recall50"] = summary["proposal_recall50"]
      row.update(timing)
      results.update({f"{task}/{key}": value for key, value in row.items()})
    common.publish(workdir, results, lambda: plot(results, workdir))
  return results


def plot(results: dict, workdir: str) -> str:
  from matplotlib.figure import Figure

  tasks = results["tasks"]
  names = [LABELS[t] for t in tasks]
  x = range(len(tasks))
  fig = Figure(figsize=(12, 4.2))
  ax_map, ax_speed = fig.subplots(1, 2)
  for offset, key, label in ((-0.2, "map50", "mAP@0.5"), (0.2, "map50_95", "mAP@0.5:0.95")):
    ax_map.bar([i + offset for i in x], [results[f"{t}/{key}"] for t in tasks], width=0.4, label=label)
  ax_map.set(xticks=list(x), xticklabels=names, ylabel="test mAP", ylim=(0, 1),
             title=f"shapes, first {results['eval_limit']} test images")
  speeds = (("network_images_per_s", "test: network (jit)"), ("test_images_per_s", "test: end to end"),
            ("train_images_per_s", "training"))
  for j, (key, label) in enumerate(speeds):
    ax_speed.bar([i + (j - 1) * 0.27 for i in x], [results[f"{t}/{key}"] for t in tasks], width=0.27, label=label)
  ax_speed.set(xticks=list(x), xticklabels=names, ylabel="images/s (log)", yscale="log",
               title="images/s on a shared 2-core CPU (load in results.json)")
  for ax in (ax_map, ax_speed):
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
  return common.save_figure(fig, workdir, "detectors.png")


if __name__ == "__main__":
  cli.launch(run, config="claims_detectors.py", workdir="workdirs/detectors")
