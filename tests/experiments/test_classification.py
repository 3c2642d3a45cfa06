"""The classification experiment as a user runs it, at small size."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import models, train, transfer
from cnnjax.data import host_input, prepare
from cnnjax.export import load_exported
from experiments import classification
from experiments.bench import jpeg_dataset
from experiments.configs import catalog, lenet5_digits, resnet_depth, transfer_digits

def small(config, steps=30):
  config.num_steps, config.eval_every, config.checkpoint_every, config.log_every = steps, steps, steps, 10
  config.tensorboard = False
  config.optimizer.warmup_steps = 0  # the configs' warm-ups are longer than these runs
  return config


def test_default_run_learns_and_reports(tmp_path):
  results = classification.run(small(lenet5_digits.get_config(), steps=40), str(tmp_path))
  assert results["num_params"] == 61706
  assert results["test_accuracy"] > 0.5  # chance is 0.1
  written = json.load(open(tmp_path / "results.json"))
  assert written["test_accuracy"] == pytest.approx(results["test_accuracy"])
  assert {"train_time_s", "train_images_per_s", "test_loss"} <= set(written)
  assert os.path.exists(tmp_path / "plots" / "curves.png")


def test_training_options_all_on(tmp_path):
  config = small(lenet5_digits.get_config(), steps=6)
  config.update_from_flattened_dict({
      "mixup_alpha": 0.2, "cutmix_alpha": 1.0, "randaugment.num_ops": 1, "ema_decay": 0.9, "grad_accum_steps": 2,
      "export": True, "batch_size": 16, "eval_batch_size": 500})
  results = classification.run(config, str(tmp_path))
  assert {"test_accuracy", "ema_test_accuracy"} <= set(results)
  rows = train.read_metrics(str(tmp_path))
  assert any("train_learning_rate" in r and "train_grad_norm" in r for r in rows)
  # The exported file gives the logits of the checkpointed model on raw uint8 test images.
  source = classification.load_split(config, "test")
  images = np.stack([source[i]["image"] for i in range(4)])
  mean, std = host_input.sample_channel_stats(classification.load_split(config, "train"))
  model = models.create("lenet5", num_classes=10)
  normalised = prepare.make_preprocess(mean, std)({"image": images})["image"]
  expected = model.apply(train.load_variables(str(tmp_path)), normalised)
  exported = load_exported(str(tmp_path / "export" / "classifier.jax"))
  np.testing.assert_allclose(exported.call(images), expected, rtol=1e-4, atol=1e-4)


def test_transfer_variants_run_in_order_and_compare(tmp_path):
  config = small(transfer_digits.get_config(), steps=20)
  config.variant_names = ("pretrain", "frozen", "cached")  # finetune and scratch use the same mechanism
  config.variants.frozen.num_steps = config.variants.cached.num_steps = 10
  results = classification.run(config, str(tmp_path))
  assert list(results) == ["pretrain", "frozen", "cached"]
  pretrained = train.load_variables(str(tmp_path / "pretrain"))["params"]
  frozen = train.load_variables(str(tmp_path / "frozen"))["params"]
  for layer in ("conv1", "conv2", "fc1", "fc2"):
    jax.tree.map(np.testing.assert_array_equal, frozen[layer], pretrained[layer])
  assert frozen["fc3"]["kernel"].shape == (84, 5)
  assert os.path.exists(tmp_path / "plots" / "test_accuracy.png")
  assert "frozen/test_accuracy" in json.load(open(tmp_path / "results.json"))

  # The head trained on cached features, put back on the frozen trunk, scores what the run reported.
  variant = config.copy_and_resolve_references()
  variant.update_from_flattened_dict({"classes": (5, 6, 7, 8, 9), "examples_per_class": 10})
  source = classification.load_split(variant, "test")
  head = train.load_variables(str(tmp_path / "cached"))["params"]
  full = transfer.splice_head({"params": pretrained}, head, "fc3")
  model = models.create("lenet5", num_classes=5)
  mean, std = host_input.sample_channel_stats(classification.load_split(variant, "train"))
  images = prepare.make_preprocess(mean, std)({"image": np.stack([r["image"] for r in source])})["image"]
  labels = np.array([r["label"] for r in source])
  accuracy = np.mean(np.argmax(model.apply(full, images), -1) == labels)
  assert accuracy == pytest.approx(results["cached"]["test_accuracy"], abs=1e-6)


def test_depth_config_compares_plain_and_residual_nets():
  config = resnet_depth.get_config()
  assert config.variant_names == ("plain20", "plain56", "resnet20", "resnet56")
  counts = {}
  for name in ("plain20", "resnet20"):
    model = models.create(name, num_classes=10)
    shapes = jax.eval_shape(lambda m=model: m.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1))))
    counts[name] = models.count_params(shapes["params"])
  assert counts["plain20"] == counts["resnet20"]  # option-A shortcuts add no parameters


@pytest.mark.parametrize("name", sorted(catalog.RECIPES))
def test_catalog_configs_build_their_model(name):
  config = catalog.get_config(name)
  model = models.create(config.model, num_classes=10, dtype=jnp.bfloat16, **config.model_kwargs)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3))))
  assert models.count_params(shapes["params"]) > 1_000_000


def test_a_missing_catalog_dataset_names_itself_and_the_directory(tmp_path):
  config = catalog.get_config("resnet50")
  config.data_dir = str(tmp_path)
  with pytest.raises((FileNotFoundError, ValueError), match=f"imagenette.*{tmp_path}|{tmp_path}.*imagenette"):
    classification.run(config, str(tmp_path / "work"))


def test_catalog_recipe_trains_on_generated_jpegs_of_varied_sizes(tmp_path):
  data_dir = str(tmp_path / "data")
  config = catalog.get_config("resnet50")
  config.update_from_flattened_dict({
      "dataset": jpeg_dataset.prepare(data_dir, "tiny"), "data_dir": data_dir, "model": "resnet20",
      "model_kwargs": {}, "image_size": 32, "batch_size": 8, "eval_batch_size": 8, "num_steps": 2,
      "log_every": 1, "eval_every": 0, "checkpoint_every": 0, "data_workers": 0,
      "optimizer.warmup_steps": 1, "tensorboard": False,
  })
  results = classification.run(config, str(tmp_path / "work"))
  assert results["dataset"] == "synthetic_jpegs/tiny" and 0.0 <= results["test_accuracy"] <= 1.0
  assert np.isfinite(results["test_loss"])
  host = classification.host_input(config)[0]
  assert (host.train.size, host.train.scale, host.eval.size) == (32, (0.08, 1.0), 32)
  source = classification.load_split(config, "validation", decode_images=False)
  image = host.eval.map(source[0])["image"]
  assert isinstance(source[0]["image"], bytes) and image.shape == (32, 32, 3) and image.dtype == np.uint8
