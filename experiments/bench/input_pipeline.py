"""Input benchmark: the grain pipeline's images/s and images per CPU-second on ImageNet-like JPEGs, against tf.data.

Also the host cores one accelerator would need, and the start-up of the
catalog recipe with two training-set sizes (its time and peak memory must
not grow with the dataset). Datasets are `experiments.bench.jpeg_dataset`,
generated into `data_dir` on first use.
"""

import json
import os
import pickle
import subprocess
import sys
import tempfile
import time

import ml_collections
import psutil

from cnnjax.data import cropped_decode, jpeg, pipeline, sources
from experiments.bench import jpeg_dataset, timing

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cpu_seconds(processes: list[psutil.Process]) -> float:
  total = 0.0
  for p in processes:
    try:
      t = p.cpu_times()
      total += t.user + t.system
    except psutil.NoSuchProcess:
      pass
  return total


def measure_grain(source, transform, batch_size: int, workers: int, warmup: int, batches: int) -> dict:
  """Images/s and images per CPU-second (this process and its grain workers) with `workers` worker processes."""
  it = pipeline.batches(source, batch_size, seed=0, transform=transform, worker_count=workers)
  try:
    for _ in range(warmup):  # starts the workers and fills their buffers
      next(it)
    processes = [psutil.Process()] + psutil.Process().children(recursive=True)
    cpu, wall = _cpu_seconds(processes), time.perf_counter()
    for _ in range(batches):
      next(it)
    wall, cpu = time.perf_counter() - wall, _cpu_seconds(processes) - cpu
  finally:
    if hasattr(it, "close"):
      it.close()
  images = batches * batch_size
  return {"workers": workers, "images_per_s": images / wall, "images_per_cpu_s": images / cpu,
          "wall_s": wall, "cpu_s": cpu}


def measure_whole_decode(source, transform, c: ml_collections.ConfigDict) -> dict:
  """The in-process row with the cropped decoder switched off: OpenCV decodes every image whole."""
  os.environ["CNNJAX_CROPPED_DECODE"] = "0"
  cropped_decode.load.cache_clear()
  try:
    return measure_grain(source, transform, c.batch_size, 0, c.warmup, c.batches)
  finally:
    del os.environ["CNNJAX_CROPPED_DECODE"]
    cropped_decode.load.cache_clear()


def _python_env(extra_path: str) -> dict[str, str]:
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, extra_path, env.get("PYTHONPATH", "")) if p)
  return env


def measure_tf(source, c: ml_collections.ConfigDict) -> dict:
  """The tf.data reference on the same records, in a subprocess; a note instead where TensorFlow is absent."""
  env = _python_env(c.tf_pythonpath)
  probe = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True, cwd=_ROOT)
  if probe.returncode:
    return {"note": "tensorflow is not installed (pip install 'cnnjax[bench]' or set input.tf_pythonpath): "
                    "tf.data reference skipped"}
  with tempfile.TemporaryDirectory() as tmp:
    paths = {k: os.path.join(tmp, k) for k in ("records.pkl", "spec.json", "out.json")}
    with open(paths["records.pkl"], "wb") as f:
      pickle.dump([bytes(source[i]["image"]) for i in range(len(source))], f)
    with open(paths["spec.json"], "w") as f:
      json.dump({"records": paths["records.pkl"], "size": c.image_size, "batch_size": c.batch_size,
                 "threads": [w for w in c.workers if w > 0], "warmup": c.warmup, "batches": c.batches}, f)
    subprocess.run([sys.executable, "-m", "experiments.bench.tf_input", paths["spec.json"], paths["out.json"]],
                   env=env, cwd=_ROOT, check=True, timeout=c.timeout_s)
    with open(paths["out.json"]) as f:
      return json.load(f)


_STARTUP = """
import json, sys, time
start = time.perf_counter()
from experiments import classification
from experiments.bench import jpeg_dataset  # registers the synthetic dataset's builder with TFDS
from experiments.bench.timing import host_peak_rss
from experiments.configs import catalog
config = catalog.get_config("resnet50")
config.update_from_flattened_dict(json.loads(sys.argv[1]))
results = classification.run(config, sys.argv[2])
print(json.dumps({"wall_s": time.perf_counter() - start, "train_time_s": results.get("train_time_s"),
                  "peak_rss_mb": host_peak_rss() / 2**20}))
"""


def measure_startup(dataset: str, data_dir: str, c: ml_collections.ConfigDict) -> dict:
  """Wall time and peak memory of a short catalog-recipe run (start-up, compile, steps, one small evaluation)."""
  overrides = {"dataset": dataset, "data_dir": data_dir, "model": c.startup_model, "model_kwargs": {},
               "image_size": c.startup_image_size, "batch_size": c.startup_batch_size,
               "eval_batch_size": c.startup_batch_size, "num_steps": c.startup_steps, "data_workers": 0,
               "log_every": 1, "eval_every": 0, "checkpoint_every": 0, "tensorboard": False,
               "optimizer.warmup_steps": 1}
  with tempfile.TemporaryDirectory() as workdir:
    done = subprocess.run([sys.executable, "-c", _STARTUP, json.dumps(overrides), workdir], env=_python_env(""),
                          cwd=_ROOT, timeout=c.timeout_s, capture_output=True, text=True)
  if done.returncode:
    raise RuntimeError(f"the catalog-recipe run on {dataset} failed ({done.returncode}): {done.stderr[-3000:]}")
  row = json.loads(done.stdout.strip().splitlines()[-1])
  return {"dataset": dataset, "train_images": sources.info(dataset, data_dir=data_dir).splits["train"], **row}


def run(c: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the input benchmark of config section `c` (`benchmark_input.py`); returns its results.

  Every pipeline is timed once a round, for `c.rounds` rounds, so that drifts in the machine's speed fall on all of
  them; each row is the round with the median images per CPU-second, and ratios to tf.data are the median of the
  rounds' ratios.
  """
  data_dir = c.data_dir or os.path.join(workdir, "data")
  name = jpeg_dataset.prepare(data_dir, c.dataset)
  source = sources.load(name, "train", data_dir=data_dir, decode_images=False)
  crop = jpeg.InceptionCrop(c.image_size)
  rounds = []
  for _ in range(c.rounds):
    grain_rows = [measure_grain(source, crop, c.batch_size, w, c.warmup, c.batches) for w in c.workers]
    tf = measure_tf(source, c) if c.tf else {"note": "tf.data reference disabled (input.tf=False)"}
    rounds.append({"grain": grain_rows, "whole_decode": measure_whole_decode(source, crop, c), "tf": tf})
  tf_rounds = [{r["threads"]: r for r in rnd["tf"].get("rows", [])} for rnd in rounds]
  grain_rows = []
  for i, workers in enumerate(c.workers):
    row = dict(_median([rnd["grain"][i] for rnd in rounds]))
    if all(workers in tf for tf in tf_rounds):
      ratios = sorted(rnd["grain"][i]["images_per_cpu_s"] / tf[workers]["images_per_cpu_s"]
                      for rnd, tf in zip(rounds, tf_rounds))
      row.update(ratio_cpu_vs_tf=ratios[len(ratios) // 2], ratios_cpu_vs_tf=ratios)
    grain_rows.append(row)
  tf_rows = [_median([tf[t] for tf in tf_rounds]) for t in (tf_rounds[0] if tf_rounds else {})]
  results = {"dataset": name, "image_size": c.image_size, "batch_size": c.batch_size, "rounds": c.rounds,
             "grain": grain_rows, "whole_decode": _median([rnd["whole_decode"] for rnd in rounds]),
             "tf": {**rounds[-1]["tf"], "rows": tf_rows} if tf_rows else rounds[-1]["tf"]}
  for row in [*grain_rows, results["whole_decode"], *tf_rows]:
    row["cores_for_target"] = c.target_images_per_s / row["images_per_cpu_s"]
  if c.startup:
    results["startup"] = [measure_startup(jpeg_dataset.prepare(data_dir, d), data_dir, c) for d in c.startup_datasets]
  results["target_images_per_s"] = c.target_images_per_s
  results["peak_rss_mb"] = timing.host_peak_rss() / 2**20
  return results


def _median(rows: list[dict]) -> dict:
  """The row with the median images per CPU-second (the upper one of an even count)."""
  return sorted(rows, key=lambda r: r["images_per_cpu_s"])[len(rows) // 2]


def markdown(results: dict) -> str:
  """The input benchmark as markdown tables."""
  lines = [f"## Input pipeline: {results['dataset']}, Inception crop to {results['image_size']} + flip, "
           f"batches of {results['batch_size']}", "",
           f"cores for {results['target_images_per_s']:,} img/s = that rate / images per CPU-second. "
           "CPU-seconds count this process and its grain workers (tf.data: its whole process). grain reads the "
           "prepared array_record files; tf.data gets the same records from memory. Each row: the median of "
           f"{results['rounds']} rounds taken in turns; ratio: the median of the rounds' ratios (their range).", "",
           "| pipeline | workers / threads | img/s | img per CPU-s | ratio CPU vs tf.data | cores for target |",
           "| --- | --- | --- | --- | --- | --- |"]
  for r in results["grain"]:
    spread = f" ({min(r['ratios_cpu_vs_tf']):.2f}-{max(r['ratios_cpu_vs_tf']):.2f})" if "ratios_cpu_vs_tf" in r else ""
    lines.append(f"| grain + cnnjax.data.jpeg (cropped decode) | {r['workers']} | {r['images_per_s']:.0f} | "
                 f"{r['images_per_cpu_s']:.0f} | {_fmt(r.get('ratio_cpu_vs_tf'))}{spread} | "
                 f"{r['cores_for_target']:.1f} |")
  r = results["whole_decode"]
  lines.append(f"| grain + OpenCV whole decode (`CNNJAX_CROPPED_DECODE=0`) | 0 | {r['images_per_s']:.0f} | "
               f"{r['images_per_cpu_s']:.0f} | - | {r['cores_for_target']:.1f} |")
  for r in results["tf"].get("rows", []):
    lines.append(f"| tf.data decode_and_crop_jpeg | {r['threads']} | {r['images_per_s']:.0f} | "
                 f"{r['images_per_cpu_s']:.0f} | 1 | {r['cores_for_target']:.1f} |")
  if "note" in results["tf"]:
    lines += ["", results["tf"]["note"]]
  if results.get("startup"):
    lines += ["", "| catalog recipe run on | training images | wall s | train s | peak RSS MB |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['dataset']} | {r['train_images']} | {r['wall_s']:.1f} | {_fmt(r['train_time_s'])} | "
              f"{r['peak_rss_mb']:.0f} |" for r in results["startup"]]
  return "\n".join(lines) + "\n"


def _fmt(v) -> str:
  return "-" if v is None else f"{v:.2f}"
