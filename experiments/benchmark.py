"""Benchmark: train/inference images per second, compile time, memory and scaling, vs PyTorch.

  python -m experiments.benchmark --workdir=/tmp/bench
  python -m experiments.benchmark --config=experiments/configs/benchmark_gpu.py --workdir=/tmp/bench_gpu
  python -m experiments.benchmark --config=experiments/configs/benchmark_input.py --workdir=/tmp/bench_input

Each measurement runs in a fresh worker process (`experiments.bench.worker`):
on the CPU one per host device count in `config.devices` (JAX reads
`XLA_FLAGS=--xla_force_host_platform_device_count=N` only when it starts); on
an accelerator a single one that measures 1, 2, 4, ... of all local devices
(`config.devices` is ignored). The first worker also times NMS against the box
count, the style-transfer step, and the PyTorch twins (same architecture,
weights, batch, loss and SGD-momentum step; interleaved with cnnjax step by
step, so the ratio cnnjax time / torch time holds up under background load).
With `config.input.enabled` it also measures the host input pipeline
(`experiments.bench.input_pipeline`); `config.input_only` measures only that.
Writes `results.json`, `benchmark.md`, `plots/benchmark.png` and `config.json`.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import ml_collections
from absl import logging

from cnnjax.train.metrics import write_config, write_results
from experiments import cli
from experiments.bench import input_pipeline, jpeg_dataset

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FORCE = "--xla_force_host_platform_device_count"


def _check(config: ml_collections.ConfigDict) -> None:
  if not config.devices or any(not isinstance(n, int) or n < 1 for n in config.devices):
    raise ValueError(f"config.devices={tuple(config.devices)}: expected positive device counts")
  unknown = [m for m in config.model_names if m not in config.models]
  if unknown:
    raise ValueError(f"config.model_names={tuple(config.model_names)}: {unknown} not in config.models "
                     f"({sorted(config.models)})")
  bad = [d for d in config.dtypes if d not in ("float32", "bfloat16", "float16")]
  if bad:
    raise ValueError(f"config.dtypes={tuple(config.dtypes)}: expected float32, bfloat16 or float16")
  bad = [f for f in config.torch_formats if f not in ("nchw", "nhwc")]
  if bad:
    raise ValueError(f"config.torch_formats={tuple(config.torch_formats)}: expected 'nchw' and/or 'nhwc'")
  unknown = [o for o in config.get("train_option_names", ()) if o not in config.train_options]
  if unknown:
    raise ValueError(f"config.train_option_names={tuple(config.train_option_names)}: {unknown} not in "
                     f"config.train_options ({sorted(config.train_options)})")
  if config.steps < 1 or config.warmup < 0 or config.turn < 1:
    raise ValueError(f"config.steps={config.steps}, config.warmup={config.warmup}, config.turn={config.turn}: "
                     "expected >= 1, >= 0 and >= 1")


def _worker_env(num_devices: int) -> dict[str, str]:
  env = dict(os.environ)
  flags_ = re.sub(rf"{_FORCE}=\S+", "", env.get("XLA_FLAGS", "")).strip()
  env["XLA_FLAGS"] = f"{flags_} {_FORCE}={num_devices}".strip()
  env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH", "")) if p)
  # On a GPU, JAX would take 75% of its memory up front and leave the PyTorch twin too little.
  env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.5")
  return env


def run_worker(config: ml_collections.ConfigDict, num_devices: int, extras: bool) -> dict:
  """Runs one worker process with `num_devices` host devices; returns its measurements."""
  with tempfile.TemporaryDirectory() as tmp:
    spec, out = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
    with open(spec, "w") as f:
      json.dump({"config": config.to_dict(), "extras": extras}, f)
    logging.info("benchmark worker: %d host device(s)%s", num_devices, ", with NMS/style/torch" if extras else "")
    subprocess.run([sys.executable, "-m", "experiments.bench.worker", spec, out], env=_worker_env(num_devices),
                   cwd=_ROOT, check=True, timeout=config.worker_timeout_s)
    with open(out) as f:
      return json.load(f)


def _scaling(rows: list[dict]) -> None:
  """Adds `scaling_efficiency` = (images/s on N devices) / (N x images/s on 1 device)."""
  base = {(r["model"], r["batch_size"], r["dtype"]): r["train_images_per_s"] for r in rows if r["devices"] == 1}
  for r in rows:
    one = base.get((r["model"], r["batch_size"], r["dtype"]))
    r["scaling_efficiency"] = r["train_images_per_s"] / (r["devices"] * one) if one else None


def _machine() -> dict:
  info = {"cpu_count": os.cpu_count(), "cpu_model": None}
  try:
    with open("/proc/cpuinfo") as f:
      info["cpu_model"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None)
  except OSError:
    pass
  if hasattr(os, "sched_getaffinity"):
    info["cpus_available"] = len(os.sched_getaffinity(0))
  return info


def _fmt(v, digits=3) -> str:
  if v is None:
    return "-"
  if isinstance(v, float):
    return f"{v:.{digits}g}"
  return str(v)


def markdown(results: dict) -> str:
  """The results as markdown tables."""
  if "classifiers" not in results:
    return input_pipeline.markdown(results["input"])
  return _models_markdown(results) + (input_pipeline.markdown(results["input"]) if results.get("input") else "")


def _models_markdown(results: dict) -> str:
  torch_keys = sorted({k[len("ratio_train_"):] for r in results["classifiers"] for k in r
                       if k.startswith("ratio_train_") and not k.endswith("_min")})
  head = ["model", "input", "batch", "dtype", "devices", "train img/s", "infer img/s", "compile train s",
          "step program MB", "peak MB", "scaling eff."]
  head += [h for t in torch_keys for h in (f"{t} train img/s", f"ratio train ({t})", f"ratio infer ({t})")]
  lines = [f"# Benchmark on {results['device_kind']} ({results['platform']}, {results['machine']['cpu_model']}, "
           f"{results['machine']['cpu_count']} cores)", "",
           f"jax {results['jax_version']}, torch {results['torch'] or '-'} ({results['torch_note']}). "
           "Medians of timed steps after compilation; ratio = cnnjax time / the peer's time (below 1: cnnjax faster); "
           "peers: the PyTorch twins and `stock_flax`, the same network on stock Flax layers.",
           "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
  for r in results["classifiers"]:
    cells = [r["model"], "x".join(map(str, r["image_shape"])), r["batch_size"], r["dtype"], r["devices"],
             r["train_images_per_s"], r["infer_images_per_s"], r["compile_train_s"],
             r["train_program_bytes"] / 2**20 if r.get("train_program_bytes") else None,
             r["peak_memory_bytes"] / 2**20, r.get("scaling_efficiency")]
    for t in torch_keys:
      cells += [r.get(f"{t}_train_images_per_s"), r.get(f"ratio_train_{t}"), r.get(f"ratio_infer_{t}")]
    lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
  lines.append("")
  lines.append("Peak memory: " + ", ".join(sorted({r["peak_memory_kind"] for r in results["classifiers"]})) +
               " (host_rss: the worker process's peak resident set, runtime included; device: the allocator's "
               "peak since the worker started, so it never decreases down the table). Step program: XLA's plan "
               "for the train step on one device (arguments + outputs + temporaries - donated).")
  fed = [r for r in results["classifiers"] if "fed_train_images_per_s" in r or "jpeg_fed_train_images_per_s" in r]
  if fed:
    lines += ["", "## Fed from the host: the train step on device-resident data against host-fed batches", "",
              "prefetch: copies of the fixed batch through `prefetch_to_mesh`; JPEG pipeline: "
              "`pipeline.batches` on `experiments.bench.jpeg_dataset` (Inception crop + flip, uint8, cast on the "
              "devices) in that many grain workers, then `prefetch_to_mesh`.", "",
              "| model | batch | dtype | devices | device-resident img/s | prefetch img/s | JPEG pipeline img/s | "
              "workers |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['batch_size']} | {r['dtype']} | {r['devices']} | "
              f"{_fmt(r['train_images_per_s'])} | {_fmt(r.get('fed_train_images_per_s'))} | "
              f"{_fmt(r.get('jpeg_fed_train_images_per_s'))} | {r.get('jpeg_fed_workers', '-')} |" for r in fed]
  if results.get("style"):
    s = results["style"]
    lines += ["", "## Style transfer (Adam step on the pixels, VGG features, Gram costs)", "",
              "| image | arch | dtype | it/s | compile s | torch it/s | ratio |", "| --- | --- | --- | --- | --- | --- | --- |",
              f"| {s['image_size']}x{s['image_size']} | {s['arch']} | {s['dtype']} | {_fmt(s['iterations_per_s'])} | "
              f"{_fmt(s['compile_s'])} | {_fmt(s.get('torch_iterations_per_s'))} | {_fmt(s.get('ratio_torch'))} |"]
  if results.get("conv_layers"):
    lines += ["", "## One conv layer: XLA's convolution against cnnjax's CPU kernel (`cnnjax.ops.kernels`)", "",
              "Milliseconds per call; train = forward + input and weight gradients; ratio = kernel / XLA. "
              "'kernel' is `kernels.conv_nhwc` as layers use it: above `MAX_WEIGHT_GRAD_CHANNELS` its weight "
              "gradient is XLA's.", "",
              "| batch x size x in -> out, k | forward XLA | forward kernel | ratio | train XLA | train kernel | ratio |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['batch']} x {r['size']}^2 x {r['in']} -> {r['out']}, {r['kernel_size']}x{r['kernel_size']} | "
              + " | ".join(_fmt(r[f"{p}_{k}"]) for p in ("forward", "train") for k in ("xla_ms", "kernel_ms", "ratio"))
              + " |" for r in results["conv_layers"]]
  if results.get("train_options"):
    lines += ["", "## Training options (issue 22): the train step with one on, against the plain step", "",
              "One device; ratio = step time with the option / plain step time (interleaved).", "",
              "| model | batch | option | settings | step ms | plain ms | ratio |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['batch_size']} | {r['option']} | {json.dumps(r['settings'])} | "
              f"{_fmt(1e3 * r['train_step_s'])} | {_fmt(1e3 * r['plain_step_s'])} | {_fmt(r['ratio'])} |"
              for r in results["train_options"]]
  if results.get("nms"):
    lines += ["", "## NMS (`cnnjax.detection.nms`, jitted)", "", "| boxes | latency ms | kept | compile s |",
              "| --- | --- | --- | --- |"]
    lines += [f"| {r['num_boxes']} | {_fmt(r['latency_ms'])} | {r['kept']} | {_fmt(r['compile_s'])} |"
              for r in results["nms"]]
  return "\n".join(lines) + "\n"


def plot(results: dict, path: str) -> str:
  """Train images/s against devices, ratios to torch, and NMS latency against boxes."""
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  fig = Figure(figsize=(15, 4))
  axes = fig.subplots(1, 3)
  groups = {}
  for r in results["classifiers"]:
    groups.setdefault(f"{r['model']} b{r['batch_size']} {r['dtype']}", []).append(r)
  for label, rows in groups.items():
    rows = sorted(rows, key=lambda r: r["devices"])
    base = rows[0]
    axes[0].plot([r["devices"] for r in rows], [r["train_images_per_s"] / base["train_images_per_s"] for r in rows],
                 "o-", label=f"{label} ({base['train_images_per_s']:,.0f} img/s on {base['devices']})")
  counts = sorted({r["devices"] for r in results["classifiers"]})
  if counts:
    axes[0].plot(counts, [c / counts[0] for c in counts], "k--", lw=0.8, label="ideal")
  axes[0].set(xlabel="devices", ylabel="train speed-up over the fewest devices", title="Data-parallel scaling")
  axes[0].legend(fontsize=7)
  bars = [(f"{r['model']} {r['devices']}d {k[len('ratio_'):]}", r[k]) for r in results["classifiers"]
          for k in r if k.startswith("ratio_") and not k.endswith("_min")]
  if results.get("style") and results["style"].get("ratio_torch") is not None:
    bars.append(("style step torch", results["style"]["ratio_torch"]))
  if bars:
    axes[1].barh([b[0] for b in bars], [b[1] for b in bars])
    axes[1].axvline(1.0, color="k", lw=0.8)
  axes[1].set(xlabel="cnnjax time / torch time", title="Against PyTorch")
  axes[1].tick_params(axis="y", labelsize=7)
  if results.get("nms"):
    axes[2].loglog([r["num_boxes"] for r in results["nms"]], [r["latency_ms"] for r in results["nms"]], "o-")
  axes[2].set(xlabel="boxes", ylabel="ms", title="NMS latency")
  fig.tight_layout()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig.savefig(path, dpi=100)
  return path


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the benchmark of `config`; writes and returns the results."""
  _check(config)
  if config.jpeg_fed.dataset:  # generated once here, read by every worker
    config.jpeg_fed.data_dir = config.jpeg_fed.data_dir or os.path.join(workdir, "data")
    jpeg_dataset.prepare(config.jpeg_fed.data_dir, config.jpeg_fed.dataset)
  write_config(workdir, config)
  if config.get("input_only"):
    return _write(workdir, {"input": input_pipeline.run(config.input, workdir), "machine": _machine()})
  first = run_worker(config, config.devices[0], extras=True)
  rows = list(first["classifiers"])
  if first["platform"] == "cpu":
    for n in config.devices[1:]:
      rows += run_worker(config, n, extras=False)["classifiers"]
  _scaling(rows)
  results = {**first, "classifiers": rows, "machine": _machine()}
  if config.get("input") and config.input.enabled:
    results["input"] = input_pipeline.run(config.input, workdir)
  plot(results, os.path.join(workdir, "plots", "benchmark.png"))
  return _write(workdir, results)


def _write(workdir: str, results: dict) -> dict:
  write_results(workdir, results)
  with open(os.path.join(workdir, "benchmark.md"), "w") as f:
    f.write(markdown(results))
  return results


if __name__ == "__main__":
  cli.launch(run, config="benchmark_default.py", workdir="workdirs/benchmark", report=markdown)
