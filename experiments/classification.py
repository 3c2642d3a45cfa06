"""Image classification: LeNet-5 on the embedded digits by default; any zoo model and dataset by config.

  python -m experiments.classification --workdir=/tmp/lenet5
  python -m experiments.classification --config=experiments/configs/resnet_depth.py --workdir=/tmp/depth

A config with `variant_names` runs each variant (its overrides of the config)
in `workdir/<variant>` and plots their training error together: the depth
experiment and the transfer-learning comparison are two such configs.
"""

import os

import jax
import jax.numpy as jnp
import ml_collections

from cnnjax import models, train, transfer
from cnnjax.data import pipeline, sources, views
from cnnjax.train import classify, parallel
from cnnjax.train import workdir as workdir_lib
from experiments import cli


def load_split(config: ml_collections.ConfigDict, split: str):
  """One split of the configured dataset, restricted to `config.classes` when set."""
  source = sources.load(config.dataset, split, data_dir=config.data_dir or None)
  if config.classes:
    per_class = config.examples_per_class if split == config.train_split else 0
    source = views.ClassSubset(source, config.classes, per_class=per_class, seed=config.seed)
  return source


def train_classifier(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains one classifier as configured and returns its final metrics."""
  parallel.maybe_initialize_distributed(**config.distributed)
  train.check_train_config(config)
  if config.model not in models.list_models():
    raise ValueError(f"config.model={config.model!r}: expected one of {models.list_models()}")
  train_source, eval_source = load_split(config, config.train_split), load_split(config, config.eval_split)
  num_classes = len(config.classes) or sources.info(config.dataset, data_dir=config.data_dir or None).num_classes
  dtype = jnp.dtype(config.dtype)
  model = models.create(config.model, num_classes=num_classes, dtype=dtype, **config.model_kwargs)
  transform = views.resize_images(config.image_size) if config.image_size else None
  mean, std = classify.channel_stats(train_source if transform is None else [transform(r) for r in train_source])
  mesh = parallel.data_mesh()
  process = dict(process_index=jax.process_index(), process_count=jax.process_count())

  def batches(start_step: int):
    return pipeline.batches(
        train_source, config.batch_size, seed=config.seed, start_step=start_step, transform=transform, **process
    )

  preprocess = classify.make_preprocess(mean, std, dtype)
  init_variables, tx = _transfer(config, model, next(batches(0))["image"])
  inputs = dict(
      model=model,
      batches=batches,
      eval_fn=classify.make_evaluator(
          lambda: pipeline.eval_batches(eval_source, config.eval_batch_size, transform=transform, **process),
          mesh,
          preprocess,
      ),
      augment_fn=classify.make_augment_fn(mean, std, config.augment, dtype),
      init_variables=init_variables,
      tx=tx,
  )
  if config.transfer.cached_head:
    inputs = _on_cached_features(config, model, init_variables, train_source, eval_source, preprocess, num_classes)
  train.fit(
      config,
      workdir,
      loss_fn=classify.cross_entropy_loss(num_classes, label_smoothing=config.label_smoothing,
                                          aux_weight=config.aux_weight),
      **inputs,
  )
  final = train.final_metrics(workdir)
  results = {
      "model": config.model,
      "dataset": config.dataset,
      "num_params": _count_params(model, next(batches(0))["image"]),
      **{k: final[k] for k in ("test_accuracy", "test_loss", "train_time_s", "train_images_per_s") if k in final},
  }
  if jax.process_index() == 0:
    train.write_results(workdir, results)
  return results


def _count_params(model, images) -> int:
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(images[:1].shape), train=False))
  return models.count_params(shapes["params"])


def _on_cached_features(config, model, variables, train_source, eval_source, preprocess, num_classes) -> dict:
  """`fit` inputs that train only the head, on features the frozen trunk computes once per split."""
  if variables is None:
    raise ValueError("config.transfer.cached_head needs config.transfer.init_from (a trained trunk)")
  process = dict(process_index=jax.process_index(), process_count=jax.process_count())
  head = config.transfer.cached_head
  train_features, eval_features = (
      transfer.cached_features(model, variables, source, head=head, preprocess=preprocess)
      for source in (train_source, eval_source)
  )
  return dict(
      model=transfer.LinearHead(num_classes),
      batches=lambda start: pipeline.batches(
          train_features, config.batch_size, seed=config.seed, start_step=start, **process
      ),
      eval_fn=classify.make_evaluator(
          lambda: pipeline.eval_batches(eval_features, config.eval_batch_size, **process),
          parallel.data_mesh(),
          lambda batch: batch,
      ),
  )


def _transfer(config, model, images):
  """Pretrained variables under a fresh head and an optimizer with frozen layers, when configured."""
  t = config.transfer
  if not t.init_from:
    return None, None
  fresh = model.init(jax.random.PRNGKey(config.seed), jnp.zeros(images[:1].shape, jnp.float32), train=False)
  variables, _ = transfer.merge_pretrained(fresh, train.load_variables(t.init_from), reinit=t.reinit)
  tx = train.make_optimizer(config.optimizer, config.num_steps)
  if t.freeze or t.freeze_stages:
    labels = transfer.trainable_labels(variables["params"], freeze=t.freeze, freeze_stages=t.freeze_stages)
    tx = transfer.freeze_optimizer(tx, labels)
  return variables, tx


def run_variants(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs each variant in `workdir/<name>`; `transfer.init_from` may name an earlier variant."""
  results = {}
  with workdir_lib.claim(workdir, config, write=jax.process_index() == 0):
    for name in config.variant_names:
      variant = ml_collections.ConfigDict(config.to_dict())
      del variant["variants"], variant["variant_names"]
      variant.update_from_flattened_dict(_flatten(config.variants[name]))
      if variant.transfer.init_from in config.variant_names:
        variant.transfer.init_from = os.path.join(workdir, variant.transfer.init_from)
      results[name] = train_classifier(variant, os.path.join(workdir, name))
    _plot_variants(workdir, config.variant_names, config.compare_metric)
    train.write_results(workdir, {f"{name}/{k}": v for name, r in results.items() for k, v in r.items()})
  return results


def _flatten(overrides: ml_collections.ConfigDict, prefix: str = "") -> dict:
  flat = {}
  for key, value in overrides.items():
    if isinstance(value, ml_collections.ConfigDict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _plot_variants(workdir: str, names, metric: str) -> None:
  from matplotlib.figure import Figure

  fig = Figure(figsize=(6, 4))
  ax = fig.subplots()
  for name in names:
    rows = [r for r in train.read_metrics(os.path.join(workdir, name)) if metric in r]
    ax.plot([r["step"] for r in rows], [r[metric] for r in rows], label=name)
  ax.set(xlabel="step", ylabel=metric, title=f"{metric} by variant")
  ax.grid(alpha=0.3)
  ax.legend()
  os.makedirs(os.path.join(workdir, "plots"), exist_ok=True)
  fig.savefig(os.path.join(workdir, "plots", f"{metric}.png"), dpi=100, bbox_inches="tight")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains as configured; returns (and writes to `workdir/results.json`) the final metrics."""
  if config.get("variant_names"):
    return run_variants(config, workdir)
  return train_classifier(config, workdir)


if __name__ == "__main__":
  cli.launch(run, config="lenet5_digits.py", workdir="workdirs/classification")
