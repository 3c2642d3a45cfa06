"""Image classification: LeNet-5 on the embedded digits by default; any zoo model and dataset by config.

  python -m experiments.classification --workdir=/tmp/lenet5
  python -m experiments.classification --config=experiments/configs/resnet_depth.py --workdir=/tmp/depth

A config with `variant_names` runs each variant (its overrides of the config)
in `workdir/<variant>` and plots their training error together: the depth
experiment and the transfer-learning comparison are two such configs.
"""

import dataclasses
import os
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnjax import models, train, transfer
from cnnjax.data import augment as augment_lib
from cnnjax.data import host_input as host_input_lib
from cnnjax.data import mixing, pipeline, prepare, sources, views
from cnnjax.export import export_classifier
from cnnjax.train import classify, parallel
from cnnjax.train import workdir as workdir_lib
from cnnjax.train.config import check_int, check_number, fail
from experiments import cli


def load_split(config: ml_collections.ConfigDict, split: str, *, decode_images: bool = True):
  """One split of the configured dataset, restricted to `config.classes` when set (labels read undecoded)."""
  data_dir = config.data_dir or None
  source = sources.load(config.dataset, split, data_dir=data_dir, decode_images=decode_images)
  if config.classes:
    per_class = config.examples_per_class if split == config.train_split else 0
    # `subset_seed` (claims configs) keeps one few-shot subset under several model seeds; -1 or absent: `seed`.
    subset_seed = config.get("subset_seed", -1)
    source = views.ClassSubset(source, config.classes, per_class=per_class,
                               seed=config.seed if subset_seed < 0 else subset_seed,
                               labels=sources.labels(config.dataset, split, data_dir=data_dir))
  return source


def host_input(config: ml_collections.ConfigDict):
  """The configured host transforms and the normalisation (config constants, else a bounded seeded sample)."""
  channels = sources.info(config.dataset, data_dir=config.data_dir or None).channels or 3
  transforms = host_input_lib.host_transforms(
      config.image_size, crop=config.host_crop, scale=config.crop_scale, ratio=config.crop_ratio,
      eval_resize=config.eval_resize, channels=channels)
  train_source, eval_source = (load_split(config, split, decode_images=not transforms.encoded_images)
                               for split in (config.train_split, config.eval_split))
  if config.channel_mean or config.channel_std:
    mean, std = (np.asarray(v, np.float32) for v in (config.channel_mean, config.channel_std))
    if mean.shape != (channels,) or std.shape != (channels,) or not (std > 0).all():
      raise ValueError(f"config.channel_mean={config.channel_mean} / config.channel_std={config.channel_std}: "
                       f"expected {channels} values each, std > 0 (or both () to estimate them)")
  else:
    mean, std = host_input_lib.sample_channel_stats(train_source, transforms.eval, count=config.stats_sample,
                                                    seed=config.seed)
  return transforms, train_source, eval_source, mean, std


def augment_spec(config: ml_collections.ConfigDict, train_source, transform) -> list:
  """`config.augment`, each `pca_colour` op given without `eigvals`/`eigvecs` getting those of the training images'
  pixel covariance (AlexNet's PCA colour augmentation; a seeded sample of at most 512 images)."""
  spec = []
  for item in config.augment:
    params = item if isinstance(item, str) else dict(item.to_dict() if hasattr(item, "to_dict") else item)
    if isinstance(params, dict) and params.get("name") == "pca_colour" and "eigvals" not in params:
      images = host_input_lib.sample_images(train_source, transform, count=512, seed=config.seed)
      eigvals, eigvecs = augment_lib.pca_colour_stats(images)
      params = {**params, "eigvals": eigvals.tolist(), "eigvecs": eigvecs.tolist()}
    spec.append(params)
  return spec


def check_config(config: ml_collections.ConfigDict) -> train.TrainConfig:
  """Checks every field of a classification config before any data is read; returns its training config."""
  train_config = train.TrainConfig.from_config(config)
  check_number("label_smoothing", config.label_smoothing, 0.0, 1.0)
  check_number("aux_weight", config.aux_weight, 0.0, float("inf"))
  for field, minimum in (("eval_batch_size", 1), ("image_size", 0), ("examples_per_class", 0),
                         ("eval_resize", 0), ("data_workers", 0), ("stats_sample", 1)):
    check_int(field, config[field], minimum)
  for field in ("mixup_alpha", "cutmix_alpha"):
    check_number(field, config[field], 0.0, float("inf"))
  check_number("mix_switch_prob", config.mix_switch_prob, 0.0, 1.0, closed_high=True)
  check_int("randaugment.num_ops", config.randaugment.num_ops, 0)
  check_number("randaugment.magnitude", config.randaugment.magnitude, 0.0, 10.0, closed_high=True)
  if config.host_crop not in host_input_lib.CROPS:
    fail("host_crop", config.host_crop, f"one of {host_input_lib.CROPS}")
  if config.host_crop != "resize" and not config.image_size:
    fail("image_size", config.image_size, f"a crop size > 0 with host_crop={config.host_crop!r}")
  low, high = config.crop_scale
  if not 0 < low <= high <= 1:
    fail("crop_scale", config.crop_scale, "(low, high) with 0 < low <= high <= 1")
  if not 0 < config.crop_ratio[0] <= config.crop_ratio[1]:
    fail("crop_ratio", config.crop_ratio, "(low, high) aspect ratios with 0 < low <= high")
  if config.export and config.transfer.cached_head:
    fail("export", config.export, "False with transfer.cached_head (which trains a separate head, not the model)")
  return train_config


@dataclasses.dataclass
class Setup:
  """What training and evaluating a classifier share: the model, its data and their preparation."""
  model: nn.Module
  num_classes: int
  dtype: Any
  transforms: host_input_lib.HostTransforms
  train_source: Any
  eval_source: Any  # the split `config.eval_split`
  mean: np.ndarray  # channel statistics of the normalisation, in [0, 1] units
  std: np.ndarray
  preprocess: Callable  # uint8 batch -> normalised batch, on device
  example: np.ndarray  # one evaluation image as the model takes it (uint8, [1, H, W, C])


def build(config: ml_collections.ConfigDict) -> Setup:
  """The configured model, sources of `config.train_split` and `config.eval_split`, and their preparation."""
  num_classes = len(config.classes) or sources.info(config.dataset, data_dir=config.data_dir or None).num_classes
  dtype = jnp.dtype(config.dtype)
  model = models.create(config.model, num_classes=num_classes, dtype=dtype, **config.model_kwargs)
  transforms, train_source, eval_source, mean, std = host_input(config)
  example = next(pipeline.eval_batches(eval_source, 1, transform=transforms.eval))["image"]
  return Setup(model, num_classes, dtype, transforms, train_source, eval_source, mean, std,
               prepare.make_preprocess(mean, std, dtype), example)


def evaluation(config: ml_collections.ConfigDict, setup: Setup,
               trunk: dict | None = None) -> tuple[nn.Module, Callable]:
  """The model a checkpoint of this config holds and `state -> {test_accuracy, test_loss}` on `setup.eval_source`.

  With `transfer.cached_head` the model is the head alone, evaluated on the features the
  frozen trunk (`trunk`, default: read from `transfer.init_from`) computes once.
  """
  mesh = parallel.data_mesh()
  if not config.transfer.cached_head:
    return setup.model, classify.make_evaluator(
        lambda: pipeline.eval_batches(setup.eval_source, config.eval_batch_size, transform=setup.transforms.eval,
                                      worker_count=config.data_workers),
        mesh, setup.preprocess)
  trunk = trunk if trunk is not None else pretrained(config, setup.model, setup.example)
  features = _features(config, setup, trunk, setup.eval_source)
  return transfer.LinearHead(setup.num_classes), classify.make_evaluator(
      lambda: pipeline.eval_batches(features, config.eval_batch_size), mesh, lambda batch: batch)


def train_classifier(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains one classifier as configured and returns its final metrics."""
  parallel.maybe_initialize_distributed(**config.distributed)
  train_config = check_config(config)
  train.check_batch_size(train_config.batch_size, train_config.grad_accum_steps)
  setup = build(config)
  model, transforms, train_source, mean, std = (setup.model, setup.transforms, setup.train_source, setup.mean,
                                                setup.std)
  init_variables, tx = _transfer(config, train_config, model, setup.example)
  eval_model, eval_fn = evaluation(config, setup, init_variables)
  if config.transfer.cached_head:
    train_features = _features(config, setup, init_variables, train_source)
    batches = lambda start: pipeline.batches(train_features, config.batch_size, seed=config.seed, start_step=start)
    inputs = dict(model=eval_model, batches=batches, eval_fn=eval_fn)
  else:
    inputs = dict(
        model=model,
        batches=lambda start_step: pipeline.batches(
            train_source, config.batch_size, seed=config.seed, start_step=start_step, transform=transforms.train,
            worker_count=config.data_workers),
        eval_fn=eval_fn,
        augment_fn=prepare.make_augment_fn(
            mean, std, augment_spec(config, train_source, transforms.eval), setup.dtype,
            randaugment=(config.randaugment.num_ops, config.randaugment.magnitude),
            mix_fn=mixing.make_mix_fn(setup.num_classes, mixup_alpha=config.mixup_alpha,
                                      cutmix_alpha=config.cutmix_alpha, switch_prob=config.mix_switch_prob),
        ),
        init_variables=init_variables,
        tx=tx,
    )
  result = train.fit(
      train_config,
      workdir,
      experiment_config=config,
      loss_fn=classify.cross_entropy_loss(setup.num_classes, label_smoothing=config.label_smoothing,
                                          aux_weight=config.aux_weight),
      **inputs,
  )
  example = setup.example
  if config.export and jax.process_index() == 0:
    variables = {k: v for k, v in jax.device_get(result.state.variables).items() if v}
    export_classifier(model, variables, example.shape[1:], os.path.join(workdir, "export", "classifier.jax"),
                      mean=mean, std=std, input_dtype=example.dtype)
  summary = result.summary()
  results = {
      "model": config.model,
      "dataset": config.dataset,
      "num_params": _count_params(model, example),
      **{k: summary[k] for k in ("test_accuracy", "test_loss", "ema_test_accuracy", "ema_test_loss", "train_time_s",
                                 "train_images_per_s") if k in summary},
  }
  if jax.process_index() == 0:
    train.write_results(workdir, results)
  return results


def _count_params(model, images) -> int:
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(images[:1].shape), train=False))
  return models.count_params(shapes["params"])


def _features(config, setup: Setup, trunk: dict | None, source) -> list[dict]:
  """Records `{'image': features, 'label'}` of `source`: the inputs of the cached head, computed by the frozen trunk."""
  if trunk is None:
    raise ValueError("config.transfer.cached_head needs config.transfer.init_from (a trained trunk)")
  return transfer.cached_features(setup.model, trunk, source, head=config.transfer.cached_head,
                                  preprocess=setup.preprocess)


def pretrained(config, model, images) -> dict | None:
  """The variables of `transfer.init_from` under a fresh head (`transfer.reinit` re-initialised), or None."""
  t = config.transfer
  if not t.init_from:
    return None
  fresh = model.init(jax.random.PRNGKey(config.seed), jnp.zeros(images[:1].shape, jnp.float32), train=False)
  variables, _ = transfer.merge_pretrained(fresh, train.load_variables(t.init_from), reinit=t.reinit)
  return variables


def _transfer(config, train_config, model, images):
  """Pretrained variables under a fresh head and an optimizer with frozen layers, when configured."""
  t = config.transfer
  variables = pretrained(config, model, images)
  if variables is None:
    return None, None
  tx = train.make_optimizer(train_config.optimizer, train_config.num_steps)
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
