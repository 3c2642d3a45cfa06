"""What ConvNets learn (issue 21, item 7; Zeiler & Fergus 2014): top-9 patches of units in five layers.

  python -m experiments.claims.what_convnets_learn --workdir=/tmp/what_convnets_learn

Trains the configured VGG in `workdir/model`, then for every unit of each layer of `claim.layers` finds the
`claim.k` test images that excite it most and the receptive-field patch around the strongest position
(`cnnjax.viz.activations`). Measures what the course shows in pictures, that deeper units see larger regions
and respond to more specific things: per layer, the receptive field and the class purity of the top images (the
share of a unit's k images in its most common class, mean over units) against the purity of k random test
images. Writes `workdir/results.json` and `workdir/plots/what_convnets_learn.png` (`claim.units_shown` units a
layer, drawn with `seed`).
"""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnjax import train
from cnnjax.data import augment, views
from cnnjax.models import vgg
from cnnjax.models.intermediates import intermediates
from cnnjax.train import workdir as workdir_lib
from cnnjax.viz import activations
from experiments import classification, cli
from experiments.claims import common
from experiments.configs import claims_what_convnets_learn


def purity(image_index: np.ndarray, labels: np.ndarray) -> float:
  """Mean over units (rows of `image_index`) of the share of their images in their most common class."""
  classes = labels[image_index]  # [U, k]
  counts = np.stack([np.bincount(row, minlength=labels.max() + 1) for row in classes])
  return float(np.mean(counts.max(axis=1) / classes.shape[1]))


def chance_purity(labels: np.ndarray, k: int, draws: int = 2000, seed: int = 0) -> float:
  """`purity` of k distinct test images drawn at random, `draws` times."""
  rng = np.random.default_rng(seed)
  return purity(np.stack([rng.choice(len(labels), k, replace=False) for _ in range(draws)]), labels)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains the model, finds every unit's top patches in each layer, writes results and plot."""
  common.check_claim(config, claims_what_convnets_learn.get_config())
  claim = config.claim
  cfg = common.variant(config)
  setup = classification.build(cfg)
  if not isinstance(setup.model, vgg.VGG):
    raise ValueError(f"config.model={config.model!r}: the receptive fields are computed for the VGG family "
                     "(vgg11, vgg11_bn, ...)")
  fields = activations.vgg_receptive_fields(setup.model.stage_sizes)
  unknown = [layer for layer in claim.layers if layer not in fields]
  if unknown:
    raise ValueError(f"config.claim.layers names {unknown}: expected VGG taps such as {list(fields)[:6]}")
  with workdir_lib.claim(workdir, config, write=jax.process_index() == 0):
    model_dir = os.path.join(workdir, "model")
    summary = classification.train_classifier(cfg, model_dir)
    variables = train.load_variables(model_dir)
    maps = jax.eval_shape(lambda: intermediates(setup.model, variables, jnp.zeros(setup.example.shape), claim.layers))
    widths = {layer: maps[layer].shape[-1] for layer in claim.layers}
    images = views.limited(setup.eval_source, claim.images)
    top = activations.what_units_see(
        setup.model, variables, images, {layer: fields[layer] for layer in claim.layers},
        units={layer: range(widths[layer]) for layer in claim.layers}, k=claim.k,
        preprocess=lambda x: augment.normalize(x, setup.mean, setup.std))
    labels = np.array([int(images[i]["label"]) for i in range(len(images))])
    results = {"test_accuracy": summary["test_accuracy"], "train_time_s": summary["train_time_s"],
               "chance_purity": chance_purity(labels, claim.k, seed=config.seed)}
    for layer in claim.layers:
      results[f"{layer}/receptive_field"] = fields[layer].size
      results[f"{layer}/units"] = widths[layer]
      results[f"{layer}/purity"] = purity(top[layer].image_index, labels)

    def draw():
      rng = np.random.default_rng(config.seed)
      shown = {layer: np.sort(rng.choice(widths[layer], claim.units_shown, replace=False)) for layer in claim.layers}
      fig = activations.plot_layers_top_patches(top, fields, setup.example.shape[1:3], shown, results)
      common.save_figure(fig, workdir, "what_convnets_learn.png")

    common.publish(workdir, results, draw)
  return results


if __name__ == "__main__":
  cli.launch(run, config="claims_what_convnets_learn.py", workdir="workdirs/what_convnets_learn")
