"""One benchmark process: times the workloads on the devices it was started with, writes JSON.

  python -m experiments.bench.worker SPEC.json OUT.json

The parent (`experiments.benchmark`) starts one per host device count on the
CPU (`XLA_FLAGS=--xla_force_host_platform_device_count=N` must be set before
JAX starts) and one in all on an accelerator, where it measures 1, 2, 4, ...
of the local devices itself. SPEC holds the benchmark config as a dict and
`extras` (whether to time NMS, the style step and PyTorch here; PyTorch runs
beside every device count with `config.torch_every_device_count`).
"""

import json
import os
import platform
import sys
import time
from typing import Any

import jax
import numpy as np

from cnnjax.data import jpeg, pipeline, sources
from cnnjax.models import layers
from cnnjax.ops import kernels
from experiments.bench import jpeg_dataset, workloads
from experiments.bench.timing import time_interleaved


def _torch(config: dict, accelerator: str):
  """(torch module, device string) when the comparison should and can run here, else (None, reason)."""
  if not config["torch"]:
    return None, "disabled by config.torch"
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None, "torch is not installed"
  if accelerator == "cpu":
    torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    return torch, "cpu"
  if accelerator == "gpu" and torch.cuda.is_available():
    return torch, "cuda"
  return None, f"torch cannot use this {accelerator}"


def _device_counts(devices: list, accelerator: str) -> list[int]:
  if accelerator == "cpu":
    return [len(devices)]  # this process was started with the host device count to measure
  counts = [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256) if k < len(devices)]
  return counts + [len(devices)]


def _rate(batch: int, timing: dict) -> float:
  return batch / timing["median_s"]


def _fed_rate(steps, batch_size: int, warmup: int, timed: int) -> float:
  """Images per second over `timed` steps of the generator `steps`, after `warmup` (workers start, compilation)."""
  try:
    for _ in range(warmup):
      next(steps)
    t0 = time.perf_counter()
    for _ in range(timed):
      next(steps)
    return batch_size * timed / (time.perf_counter() - t0)
  finally:
    steps.close()


def jpeg_source(c: dict):
  """The training split of `experiments.bench.jpeg_dataset` config `c['dataset']`, generated into `c['data_dir']`
  on first use, images left encoded."""
  name = jpeg_dataset.prepare(c["data_dir"], c["dataset"])
  return sources.load(name, "train", data_dir=c["data_dir"], decode_images=False)


def classifier_rows(config: dict, torch_mod, torch_device: str | None, accelerator: str) -> list[dict]:
  """Train/inference images per second, compile time and memory of every (model, batch, dtype, devices)."""
  devices, rows = jax.local_devices(), []
  for name in config["model_names"]:
    spec = config["models"][name]
    for batch_size in spec["batch_sizes"]:
      for dtype in config["dtypes"]:
        for k in _device_counts(devices, accelerator):
          w = workloads.Classifier(name, batch_size=batch_size, image_shape=tuple(spec["image_shape"]),
                                   num_classes=config["num_classes"], dtype=dtype, devices=devices[:k],
                                   learning_rate=config["learning_rate"], momentum=config["momentum"],
                                   seed=config["seed"])
          train_fns, infer_fns, checks = {"cnnjax": w.train_step}, {"cnnjax": w.infer_step}, {}
          twins = {}
          if torch_mod is not None and (k == 1 or config["torch_every_device_count"]):
            from experiments.bench import torch_twins  # pylint: disable=import-outside-toplevel  # needs torch
            params, stats = jax.device_get((w.state.params, w.state.batch_stats))
            for fmt in config["torch_formats"]:
              twin = torch_twins.load_flax_variables(
                  torch_twins.create(name, image_shape=spec["image_shape"], num_classes=config["num_classes"]),
                  params, stats)
              twins[f"torch_{fmt}"] = torch_twins.ClassifierSteps(
                  twin, w.host_batch["image"], w.host_batch["label"], learning_rate=config["learning_rate"],
                  momentum=config["momentum"], device=torch_device, dtype=dtype, channels_last=fmt == "nhwc")
          w.train_step()
          w.infer_step()
          memory = w.memory()
          if config["stock_flax"] and k == 1:
            # The same network on stock Flax layers (no CPU paths), same seed: the same parameters and batch;
            # built after the peak memory is read, which it would raise.
            with layers.stock_flax():
              twins["stock_flax"] = workloads.Classifier(
                  name, batch_size=batch_size, image_shape=tuple(spec["image_shape"]),
                  num_classes=config["num_classes"], dtype=dtype, devices=devices[:k],
                  learning_rate=config["learning_rate"], momentum=config["momentum"], seed=config["seed"])
          for key, steps in twins.items():
            # Same weights and batch: the first losses must agree (up to the compute dtype's rounding).
            steps.train_step()
            loss = float(w.metrics["loss"])
            twin_loss = float(steps.metrics["loss"] if isinstance(steps, workloads.Classifier) else steps.loss)
            checks[f"{key}_loss_rel_diff"] = abs(twin_loss - loss) / max(abs(loss), 1e-12)
            train_fns[key], infer_fns[key] = steps.train_step, steps.infer_step
          train = time_interleaved(train_fns, steps=config["steps"], warmup=config["warmup"], turn=config["turn"])
          infer = time_interleaved(infer_fns, steps=config["steps"], warmup=config["warmup"], turn=config["turn"])
          row = {"model": name, "image_shape": list(spec["image_shape"]), "batch_size": batch_size, "dtype": dtype,
                 "devices": k, "compile_train_s": w.compile_s["train"], "compile_infer_s": w.compile_s["infer"],
                 "peak_memory_bytes": memory["bytes"], "peak_memory_kind": memory["kind"],
                 "train_program_bytes": w.program_bytes, **checks,
                 "train_step_s": train["cnnjax"]["median_s"], "train_images_per_s": _rate(batch_size, train["cnnjax"]),
                 "infer_step_s": infer["cnnjax"]["median_s"], "infer_images_per_s": _rate(batch_size, infer["cnnjax"]),
                 "train_times_s": train["cnnjax"]["times_s"], "infer_times_s": infer["cnnjax"]["times_s"]}
          if config["fed_steps"]:
            row["fed_train_images_per_s"] = _fed_rate(w.fed_train_steps(), batch_size, config["warmup"],
                                                      config["fed_steps"])
          jpeg_fed = config["jpeg_fed"]
          if jpeg_fed["dataset"]:
            source = jpeg_source(jpeg_fed)
            crop = jpeg.InceptionCrop(spec["image_shape"][0], channels=spec["image_shape"][-1])
            batches = pipeline.batches(source, batch_size, seed=config["seed"], transform=crop,
                                       worker_count=jpeg_fed["workers"])
            try:
              row["jpeg_fed_train_images_per_s"] = _fed_rate(w.fed_train_steps(batches), batch_size,
                                                             jpeg_fed["warmup"], jpeg_fed["steps"])
            finally:
              batches.close()
            row["jpeg_fed_workers"] = jpeg_fed["workers"]
          for other in train_fns:
            if other != "cnnjax":
              row[f"{other}_train_images_per_s"] = _rate(batch_size, train[other])
              row[f"{other}_infer_images_per_s"] = _rate(batch_size, infer[other])
              row[f"ratio_train_{other}"] = train["cnnjax"]["median_s"] / train[other]["median_s"]
              row[f"ratio_infer_{other}"] = infer["cnnjax"]["median_s"] / infer[other]["median_s"]
              row[f"ratio_train_{other}_min"] = train["cnnjax"]["min_s"] / train[other]["min_s"]
          print(json.dumps({k: v for k, v in row.items() if not k.endswith("times_s")}), file=sys.stderr)
          rows.append(row)
          del w
  return rows


def train_option_rows(config: dict) -> list[dict]:
  """The train step with each of `config['train_option_names']` on, timed interleaved with the plain step.

  One device, each model's first batch size and dtype; `ratio` = step time with the option / plain step time.
  """
  rows = []
  for name in config["model_names"]:
    spec = config["models"][name]
    common = dict(batch_size=spec["batch_sizes"][0], image_shape=tuple(spec["image_shape"]),
                  num_classes=config["num_classes"], dtype=config["dtypes"][0], devices=jax.local_devices()[:1],
                  learning_rate=config["learning_rate"], momentum=config["momentum"], seed=config["seed"])
    steps = {"plain": workloads.Classifier(name, **common).train_step}
    for option in config["train_option_names"]:
      steps[option] = workloads.Classifier(name, options=config["train_options"][option], **common).train_step
    t = time_interleaved(steps, steps=config["steps"], warmup=config["warmup"], turn=config["turn"])
    for option in config["train_option_names"]:
      row = {"model": name, "batch_size": common["batch_size"], "dtype": common["dtype"], "option": option,
             "settings": config["train_options"][option], "train_step_s": t[option]["median_s"],
             "plain_step_s": t["plain"]["median_s"], "ratio": t[option]["median_s"] / t["plain"]["median_s"]}
      print(json.dumps(row), file=sys.stderr)
      rows.append(row)
  return rows


def style_row(config: dict, torch_mod, torch_device: str | None) -> dict:
  """Iterations per second of the Adam style step, and the PyTorch twin's where it runs."""
  cfg = config["style"]
  w = workloads.StyleStep(image_size=cfg["image_size"], arch=cfg["arch"], widths=tuple(cfg["widths"]),
                          dtype=cfg["dtype"], seed=config["seed"])
  fns = {"cnnjax": w.step}
  if torch_mod is not None and cfg["dtype"] == "float32":
    from experiments.bench import torch_twins  # pylint: disable=import-outside-toplevel  # needs torch
    twin = torch_twins.StyleSteps(jax.device_get(w.params), w.content, w.style, content_layer=w.content_layer,
                                  style_layers=w.style_layers, alpha=1.0, beta=1e3, learning_rate=0.01,
                                  device=torch_device)
    fns["torch"] = twin.step
  t = time_interleaved(fns, steps=cfg["steps"], warmup=config["warmup"], turn=config["turn"])
  row = {"image_size": cfg["image_size"], "arch": cfg["arch"], "widths": list(cfg["widths"]), "dtype": cfg["dtype"],
         "compile_s": w.compile_s, "peak_memory_bytes": w.memory["bytes"], "peak_memory_kind": w.memory["kind"],
         "step_s": t["cnnjax"]["median_s"], "iterations_per_s": 1.0 / t["cnnjax"]["median_s"],
         "times_s": t["cnnjax"]["times_s"]}
  if "torch" in t:
    row.update(torch_iterations_per_s=1.0 / t["torch"]["median_s"],
               ratio_torch=t["cnnjax"]["median_s"] / t["torch"]["median_s"],
               ratio_torch_min=t["cnnjax"]["min_s"] / t["torch"]["min_s"])
  print(json.dumps({k: v for k, v in row.items() if k != "times_s"}), file=sys.stderr)
  return row


def nms_rows(config: dict) -> list[dict]:
  """Latency of jitted `cnnjax.detection.nms` against the number of boxes."""
  rows = []
  for n in config["nms"]["num_boxes"]:
    w = workloads.NMS(n, iou_threshold=config["nms"]["iou_threshold"], seed=config["seed"])
    t = time_interleaved({"cnnjax": w.step}, steps=config["nms"]["steps"], warmup=config["warmup"])["cnnjax"]
    rows.append({"num_boxes": n, "compile_s": w.compile_s, "latency_ms": 1e3 * t["median_s"],
                 "kept": int(np.sum(np.asarray(w.keep) >= 0))})
  return rows


def conv_layer_rows(config: dict) -> list[dict]:
  """Milliseconds per call of one conv layer on XLA's convolution and on cnnjax's CPU kernel."""
  rows = []
  for batch, size, cin, cout, k in config["conv_layers"]["shapes"]:
    w = workloads.ConvLayer(batch, size, cin, cout, k, seed=config["seed"])
    t = time_interleaved(w.steps, steps=config["conv_layers"]["steps"], warmup=config["warmup"],
                         turn=config["turn"])
    row = {"batch": batch, "size": size, "in": cin, "out": cout, "kernel_size": k}
    for (pass_, path), timing in t.items():
      row[f"{pass_}_{path}_ms"] = 1e3 * timing["median_s"]
    for pass_ in ("forward", "train"):
      row[f"{pass_}_ratio"] = row[f"{pass_}_kernel_ms"] / row[f"{pass_}_xla_ms"]
    rows.append(row)
  return rows


def measure(spec: dict[str, Any]) -> dict[str, Any]:
  """Runs everything `spec` asks for on this process's devices."""
  config = spec["config"]
  devices = jax.local_devices()
  accelerator = devices[0].platform
  out = {"platform": accelerator, "device_kind": devices[0].device_kind, "num_devices": len(devices),
         "jax_version": jax.__version__, "python": platform.python_version()}
  wants_torch = spec["extras"] or config["torch_every_device_count"]
  torch_mod, torch_device = _torch(config, accelerator) if wants_torch else (None, "not measured here")
  out["torch"] = torch_mod.__version__ if torch_mod else None
  out["torch_note"] = torch_device if torch_mod is None else f"torch on {torch_device}"
  out["classifiers"] = classifier_rows(config, torch_mod, torch_device if torch_mod else None, accelerator)
  if spec["extras"]:
    out["train_options"] = train_option_rows(config) if config["train_option_names"] else []
    out["nms"] = nms_rows(config) if config["nms"]["num_boxes"] else []
    out["style"] = style_row(config, torch_mod, torch_device if torch_mod else None) if config["style"]["enabled"] else None
    on_cpu_kernels = accelerator == "cpu" and kernels.load()
    out["conv_layers"] = conv_layer_rows(config) if on_cpu_kernels and config["conv_layers"]["shapes"] else []
  return out


def main(argv: list[str]) -> None:
  spec_path, out_path = argv[1:3]
  with open(spec_path) as f:
    spec = json.load(f)
  result = measure(spec)
  with open(out_path, "w") as f:
    json.dump(result, f)


if __name__ == "__main__":
  main(sys.argv)
