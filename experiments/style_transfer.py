"""Neural style transfer (Gatys et al.): optimise the pixels against VGG Gram-matrix statistics.

  python -m experiments.style_transfer --workdir=/tmp/style
  python -m experiments.style_transfer --workdir=/tmp/style --config.weights=vgg19.pth --config.optimizer=lbfgs

Writes `result.png`, `plots/style_transfer.png` (content | style | result) and
`plots/costs.png`, `metrics.jsonl` and `results.json`. The current image and
optimizer state are saved to `checkpoints/state.npz` every `checkpoint_every`
steps (NumPy, not orbax: a few arrays, rewritten atomically), and a rerun with
the same workdir resumes from it.
"""

import functools
import os
import zipfile

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging
import numpy as np

from cnnjax.models.vgg import tap_names
from cnnjax.style import content_cost, memory
from cnnjax.style.extractor import STAGE_SIZES, resolve_weights, vgg_features
from cnnjax.style.images import BUNDLED, load_image, save_image
from cnnjax.style.transfer import State, stylize
from cnnjax.train import workdir as workdir_lib
from cnnjax.train.config import DTYPES, check_int, check_number, fail
from cnnjax.train.metrics import MetricWriter, read_metrics, write_results
from cnnjax.viz.style import plot_costs, plot_triptych
from experiments import cli

CHOICES = {"pool": ("max", "avg"), "optimizer": ("adam", "lbfgs"), "parameterization": ("clip", "sigmoid"),
           "color": ("none", "histogram", "luminance"), "dtype": DTYPES}


def check_config(config: ml_collections.ConfigDict) -> int:
  """Checks every field of a style-transfer config before any image is read or memory allocated.

  Returns the estimated peak bytes of the style step (`cnnjax.style.memory`), which
  must fit in `memory_limit_gb` (-1: 90% of the device's memory; 0: no check).
  """
  for field, choices in CHOICES.items():
    if config[field] not in choices:
      fail(field, config[field], f"one of {choices}")
  if config.arch not in STAGE_SIZES:
    fail("arch", config.arch, f"one of {tuple(STAGE_SIZES)}")
  for field in ("content", "style"):
    if config[field] not in BUNDLED and not os.path.isfile(config[field]):
      fail(field, config[field], f"an image file or one of the bundled images {BUNDLED}")
  if config.weights and not os.path.isfile(config.weights):
    fail("weights", config.weights, "'' or a VGG weights file (.pth, .safetensors, .h5)")
  if config.checkpoint_dir and not os.path.isdir(config.checkpoint_dir):
    fail("checkpoint_dir", config.checkpoint_dir, "'' or the workdir of a classification run with a VGG model")
  for field, minimum in (("seed", 0), ("image_size", 1), ("num_steps", 1), ("log_every", 1),
                         ("checkpoint_every", 0)):
    check_int(field, config[field], minimum)
  for field in ("alpha", "beta", "tv_weight"):
    check_number(field, config[field], 0.0, float("inf"))
  check_number("learning_rate", config.learning_rate, 0.0, float("inf"))
  if config.learning_rate == 0:
    fail("learning_rate", config.learning_rate, "a positive number")
  check_number("noise_ratio", config.noise_ratio, 0.0, 1.0, closed_high=True)
  names = tap_names(STAGE_SIZES[config.arch])
  if config.content_layer not in names:
    fail("content_layer", config.content_layer, f"a layer of {config.arch}: one of {names}")
  style_layers = tuple(config.style_layers)
  if not style_layers or any(layer not in names for layer in style_layers):
    fail("style_layers", style_layers, f"a non-empty tuple of layers of {config.arch} from {names}")
  weights = tuple(config.style_weights)
  if len(weights) != len(style_layers):
    fail("style_weights", weights, f"one weight per style layer {style_layers}")
  for i, weight in enumerate(weights):
    check_number(f"style_weights[{i}]", weight, 0.0, float("inf"))
  scales = tuple(config.scales)
  if not scales or list(scales) != sorted(scales) or scales[-1] != 1.0 or scales[0] <= 0:
    fail("scales", scales, "increasing fractions in (0, 1] ending at 1.0")
  limit = config.memory_limit_gb
  if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not (limit == -1 or limit >= 0):
    fail("memory_limit_gb", limit, "-1 (90% of the device's memory), 0 (no check) or a limit in GiB > 0")
  # The step at full size is the peak (coarser scales of the pyramid need less).
  return memory.check_fits(config.image_size, (config.content_layer, *style_layers), limit, arch=config.arch,
                           optimizer=config.optimizer, dtype=jnp.dtype(config.dtype))


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the style transfer of `config`; returns (and writes) the results."""
  estimate = check_config(config)  # before any image is read or memory allocated
  logging.info("style step: an estimated %.2f GiB at image_size=%d", estimate / memory.GIB, config.image_size)
  content = load_image(config.content, config.image_size)
  style = load_image(config.style, config.image_size)
  style_layers = dict(zip(config.style_layers, config.style_weights))
  taps = [config.content_layer, *style_layers]
  params, preprocessing, source = resolve_weights(config.weights, config.checkpoint_dir, arch=config.arch,
                                                  taps=taps, seed=config.seed)
  extract = functools.partial(vgg_features, pool=config.pool, preprocessing=preprocessing,
                              dtype=jnp.dtype(config.dtype))
  with workdir_lib.claim(workdir, config):
    os.makedirs(os.path.join(workdir, "plots"), exist_ok=True)
    ckpt = os.path.join(workdir, "checkpoints", "state.npz")
    start = _load_state(ckpt)
    if start:
      logging.info("resuming from %s at step %d", ckpt, start.step)
    writer = MetricWriter(workdir, resume_step=start.step if start else 0, tensorboard=False)
    result = stylize(
        extract, params, content, style, num_steps=config.num_steps, optimizer=config.optimizer,
        learning_rate=config.learning_rate, content_layer=config.content_layer, style_layers=style_layers,
        alpha=config.alpha, beta=config.beta, tv_weight=config.tv_weight, noise_ratio=config.noise_ratio,
        parameterization=config.parameterization, scales=tuple(config.scales), color_mode=config.color,
        seed=config.seed, log_every=config.log_every, start=start, checkpoint_every=config.checkpoint_every,
        on_checkpoint=functools.partial(_save_state, ckpt),
        on_log=lambda row: writer.write(row["step"], {k: v for k, v in row.items() if k != "step"}))
    writer.close()
    history = read_metrics(workdir)  # the whole history, also across resumes
    save_image(result.image, os.path.join(workdir, "result.png"))
    plot_triptych(content, style, result.image, os.path.join(workdir, "plots", "style_transfer.png"),
                  title=f"{config.arch} ({source}), {config.optimizer}, {history[-1]['step']} steps")
    plot_costs(history, os.path.join(workdir, "plots", "costs.png"))
    first, last = result.initial, result.final
    # Scale for "the content cost stays bounded": the content cost of the style image itself.
    acts = jax.jit(extract, static_argnums=2)(params, jnp.stack([content, style]), (config.content_layer,))
    acts = acts[config.content_layer]
    results = {
        "weights": source, "preprocessing": preprocessing, "steps": history[-1]["step"],
        "content_cost_start": first["content"], "content_cost": last["content"],
        "style_cost_start": first["style"], "style_cost": last["style"],
        "style_cost_reduction": first["style"] / max(last["style"], 1e-30),
        "content_cost_of_style_image": float(content_cost(acts[0], acts[1])),
        "total_cost": last["total"], "iterations_per_s": result.steps_per_second,
        "image_size": config.image_size, "backend": jax.default_backend(),
    }
    write_results(workdir, results)
  return results


def _save_state(path: str, state: State) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp.npz"
  np.savez(tmp, step=state.step, image=state.image, **{f"opt_{i}": l for i, l in enumerate(state.opt_leaves)})
  os.replace(tmp, path)


def _load_state(path: str) -> State | None:
  if not os.path.exists(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as f:
      n = sum(k.startswith("opt_") for k in f.files)
      return State(int(f["step"]), f["image"], [f[f"opt_{i}"] for i in range(n)])
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # truncated, or not our file
    raise ValueError(f"{path} is damaged ({type(e).__name__}: {e}); delete it to restart the optimisation "
                     "from step 0 in this workdir, or use another --workdir") from None


if __name__ == "__main__":
  cli.launch(run, config="style_default.py", workdir="workdirs/style_transfer")
