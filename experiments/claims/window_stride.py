"""The sliding-window stride trade-off (issue 21, item 6): detection quality against cost, naive and convolutional.

  python -m experiments.claims.window_stride --workdir=/tmp/window_stride [--config.claim.strides="(4,8)"]

Trains the detection experiment's window classifier once (`experiments.detection`, task `sliding_window`, in
`workdir/train`), then detects at each stride of `claim.strides` over every scale of `scales`: mAP@0.5 and
mAP@0.5:0.95 on the test images (convolutional form), windows per image, and seconds per image of the
convolutional detector and of the naive one (every window cropped and classified), with the NMS over all windows
and without (network only), timed side by side in this process on the first `claim.naive_images` test images,
where their predictions are also compared. Writes
`workdir/results.json` and `workdir/plots/window_stride.png`.
"""

import os

import jax
import ml_collections
import numpy as np

from cnnjax import train
from cnnjax.data import views
from cnnjax.detection.sliding_window import window_grid
from cnnjax.train import workdir as workdir_lib
from experiments import cli, detection
from experiments.claims import common
from experiments.configs import claims_window_stride
from experiments.detection import common as detection_common
from experiments.detection import train_sliding_window


def windows_per_image(config: ml_collections.ConfigDict, image_size: int, stride: int) -> int:
  """Windows of side `config.window` every `stride` pixels over all of `config.scales`."""
  return sum(int(np.prod(window_grid(round(image_size * s), round(image_size * s), config.window, stride)))
             for s in config.scales)


def network_rate(detector, source, batch_size: int) -> float:
  """Images/s of a detector's window logits alone (no NMS), on `source` in batches of `batch_size`."""
  return detection_common.predict_all(lambda b: dict(enumerate(detector(b["image"]))), source, batch_size)[1]


def same_detections(a: list[dict], b: list[dict]) -> bool:
  return all(np.array_equal(x["classes"], y["classes"]) and np.allclose(x["boxes"], y["boxes"], atol=1e-6)
             for x, y in zip(a, b))


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains the window classifier, detects at every stride, writes results.json and the plot."""
  common.check_claim(config, claims_window_stride.get_config())
  if config.task != "sliding_window":
    raise ValueError(f"config.task={config.task!r}: the stride claim trains the window classifier; "
                     "expected 'sliding_window'")
  claim = config.claim
  experiment = common.variant(config)
  with workdir_lib.claim(workdir, config, write=jax.process_index() == 0):
    trained = detection.run(experiment, os.path.join(workdir, "train"))
    variables = train.load_variables(os.path.join(workdir, "train"))
    _, test_source, class_names = detection_common.detection_sources(experiment)
    test_source = views.limited(test_source, config.eval_limit)
    naive_source = views.limited(test_source, claim.naive_images)
    size = config.image_size
    results = {"strides": [int(s) for s in claim.strides], "network_stride": 2 ** len(config.window_features),
               "window": config.window, "scales": list(config.scales), "eval_images": len(test_source),
               "naive_images": len(naive_source), "final_train_accuracy": trained["final_train_accuracy"]}
    for stride in claim.strides:
      naive, conv = train_sliding_window.make_detectors(experiment, len(class_names), variables, stride)
      dets, conv_rate = detection_common.predict_all(
          train_sliding_window.make_predict(experiment, conv, size, stride), test_source, config.eval_batch_size)
      conv_few, conv_few_rate = detection_common.predict_all(
          train_sliding_window.make_predict(experiment, conv, size, stride), naive_source, claim.naive_batch_size)
      naive_dets, naive_rate = detection_common.predict_all(
          train_sliding_window.make_predict(experiment, naive, size, stride), naive_source, claim.naive_batch_size)
      network_rates = {name: network_rate(fn, naive_source, claim.naive_batch_size)
                       for name, fn in (("conv", conv), ("naive", naive))}
      metrics = detection_common.score_and_draw(workdir, f"stride{stride}", test_source, dets, class_names,
                                                config.num_plot_images, size)
      row = {"map50": metrics["map50"], "map50_95": metrics["map50_95"],
             "windows_per_image": windows_per_image(config, size, stride),
             "conv_s_per_image": 1.0 / conv_rate, "conv_s_per_image_side_by_side": 1.0 / conv_few_rate,
             "naive_s_per_image": 1.0 / naive_rate, "naive_equals_convolutional": same_detections(naive_dets, conv_few),
             **{f"{name}_network_s_per_image": 1.0 / rate for name, rate in network_rates.items()}}
      results.update({f"stride{stride}/{k}": v for k, v in row.items()})
    common.publish(workdir, results, lambda: plot(results, workdir))
  return results


def plot(results: dict, workdir: str) -> str:
  from matplotlib.figure import Figure
  from matplotlib.ticker import NullLocator

  strides = results["strides"]
  get = lambda key: [results[f"stride{s}/{key}"] for s in strides]
  fig = Figure(figsize=(12, 4.2))
  ax_map, ax_cost = fig.subplots(1, 2)
  ax_map.plot(strides, get("map50"), "-o", label="mAP@0.5")
  ax_map.plot(strides, get("map50_95"), "-s", label="mAP@0.5:0.95")
  ax_map.set(xscale="log", xticks=strides, xticklabels=[str(s) for s in strides], xlabel="stride (pixels)",
             ylabel="test mAP", title=f"sliding windows ({results['window']}px, scales {results['scales']})")
  ax_cost.plot(strides, get("naive_s_per_image"), "-o", color="C0", label="naive: crop and classify each window")
  ax_cost.plot(strides, get("conv_s_per_image_side_by_side"), "-s", color="C1", label="convolutional (same windows)")
  ax_cost.plot(strides, get("naive_network_s_per_image"), "--o", color="C0", label="naive, network only (no NMS)")
  ax_cost.plot(strides, get("conv_network_s_per_image"), "--s", color="C1", label="convolutional, network only")
  ax_cost.set(xscale="log", yscale="log", xticks=strides, xticklabels=[str(s) for s in strides],
              xlabel="stride (pixels)", ylabel="seconds per image (log)", title="cost against stride")
  twin = ax_cost.twinx()
  twin.plot(strides, get("windows_per_image"), ":^", color="gray", label="windows per image")
  twin.set(yscale="log", ylabel="windows per image (log)")
  for ax in (ax_map, ax_cost):
    ax.xaxis.set_minor_locator(NullLocator())  # only the strides as ticks on the log axis
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right" if ax is ax_cost else "best")
  twin.legend(fontsize=7, loc="lower left")
  return common.save_figure(fig, workdir, "window_stride.png")


if __name__ == "__main__":
  cli.launch(run, config="claims_window_stride.py", workdir="workdirs/window_stride")
