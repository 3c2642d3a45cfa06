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

from cnnjax.style import content_cost
from cnnjax.style.extractor import resolve_weights, vgg_features
from cnnjax.style.images import load_image, save_image
from cnnjax.style.transfer import State, stylize
from cnnjax.train import workdir as workdir_lib
from cnnjax.train.metrics import MetricWriter, read_metrics, write_results
from cnnjax.viz.style import plot_costs, plot_triptych
from experiments import cli

def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the style transfer of `config`; returns (and writes) the results."""
  if len(config.style_layers) != len(config.style_weights):
    raise ValueError(f"style_weights={tuple(config.style_weights)}: expected one weight per style layer "
                     f"{tuple(config.style_layers)}")
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
