"""The claims runners (issue 21) at tiny size, and their measurements against independent NumPy computations."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import models
from experiments import classification
from experiments.claims import augmentation, common, why_convolutions
from experiments.configs import claims_augmentation, claims_why_convolutions

MEAN, STD = np.array([0.3], np.float32), np.array([0.4], np.float32)


def tiny(config, steps=4):
  config.num_steps = config.eval_every = config.checkpoint_every = config.log_every = steps
  config.optimizer.warmup_steps = 0
  return config


def lenet(seed=0):
  model = models.create("lenet5", num_classes=10)
  return model, model.init(jax.random.key(seed), jnp.zeros((1, 32, 32, 1)))


def digit_like_images(n=6, seed=0):
  """Strokes in the middle, zeros at the border (like the digits), uint8."""
  images = np.zeros((n, 32, 32, 1), np.uint8)
  images[:, 4:28, 6:26] = np.random.default_rng(seed).integers(0, 256, (n, 24, 20, 1))
  return images


def np_correlate(x, kernel, bias):
  """VALID cross-correlation, NHWC x HWIO, in float64."""
  windows = np.lib.stride_tricks.sliding_window_view(x, kernel.shape[:2], axis=(1, 2))  # N,H',W',C,kh,kw
  return np.tensordot(windows, kernel.transpose(2, 0, 1, 3), axes=3) + bias


def np_lenet_maps(variables, images):
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
  x = (images.astype(np.float64) / 255.0 - MEAN[0]) / STD[0]
  conv1 = np_correlate(x, p["conv1"]["kernel"], p["conv1"]["bias"])
  r = np.maximum(conv1, 0.0)
  n, h, w, c = r.shape
  pool1 = r.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
  conv2 = np_correlate(pool1, p["conv2"]["kernel"], p["conv2"]["bias"])
  return {"conv1": conv1, "conv2.input": pool1, "conv2": conv2}


def np_shifted(images, s, direction):
  """Images moved by s pixels to the 'right', 'left', 'down' or 'up', zeros filling in."""
  out, w = np.zeros_like(images), images.shape[2]
  if direction in ("down", "up"):
    return np.swapaxes(np_shifted(np.swapaxes(images, 1, 2), s, "right" if direction == "down" else "left"), 1, 2)
  if direction == "right":
    out[:, :, s:] = images[:, :, :w - s]
  else:
    out[:, :, :w - s] = images[:, :, s:]
  return out


def np_relative_error(a, b, k, direction):
  """|b - a moved by k| / |a moved by k| where the moved map is defined."""
  h, w = a.shape[1:3]
  pairs = {"right": (b[:, :, k:], a[:, :, :w - k]), "left": (b[:, :, :w - k], a[:, :, k:]),
           "down": (b[:, k:], a[:, :h - k]), "up": (b[:, :h - k], a[:, k:])}
  moved, expected = pairs[direction]
  return np.linalg.norm(moved - expected) / np.linalg.norm(expected)


def test_equivariance_matches_numpy():
  model, variables = lenet()
  images = digit_like_images(4)
  errors = why_convolutions.equivariance_errors(model, variables, MEAN, STD, images, max_shift=3)
  base = np_lenet_maps(variables, images)
  expected = {name: [] for name, _ in why_convolutions.LAYERS}
  for s in range(4):
    moved = {d: np_lenet_maps(variables, np_shifted(images, s, d)) for d in ("right", "left", "down", "up")}
    for name, stride in why_convolutions.LAYERS:
      expected[name].append(np.mean([np_relative_error(base[name], m[name], s // stride, d) for d, m in moved.items()]))
  for name, _ in why_convolutions.LAYERS:
    np.testing.assert_allclose(errors[name], expected[name], rtol=1e-3, atol=1e-6, err_msg=name)
  assert max(errors["conv1"]) < 1e-6  # exact: a convolution commutes with integer shifts
  assert errors["conv2.input"][2] < 1e-6 < 1e-3 < errors["conv2.input"][1]  # after a stride-2 pool: even shifts only


def test_probabilities_and_ensemble_match_numpy():
  images, labels = digit_like_images(7), np.arange(7) % 10
  member_probs = []
  expected = []
  model = models.create("lenet5", num_classes=10)
  fn = common.softmax_fn(model, MEAN, STD)
  for seed in (0, 1, 2):
    _, variables = lenet(seed)
    member_probs.append(common.batched(fn, variables, images, batch_size=4))
    logits = np.asarray(model.apply(variables, (images / 255.0 - MEAN) / STD), np.float64)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    expected.append(e / e.sum(-1, keepdims=True))
  np.testing.assert_allclose(np.stack(member_probs), np.stack(expected), rtol=1e-5, atol=1e-6)
  out = augmentation.ensemble(member_probs, labels)
  mean = np.mean(expected, axis=0)
  assert out["accuracy"] == np.mean(np.argmax(mean, -1) == labels)
  assert out["member_accuracies"] == [np.mean(np.argmax(p, -1) == labels) for p in expected]
  assert out["accuracy_by_size"][0] == out["member_accuracies"][0] and out["accuracy_by_size"][-1] == out["accuracy"]


def test_ten_crop_matches_numpy():
  model, variables = lenet()
  images = digit_like_images(3)
  ten, five = np.asarray(augmentation.crop_average_fn(model, MEAN, STD, pad=2)(variables, images))
  padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
  crops = [padded[:, y:y + 32, x:x + 32] for y, x in ((0, 0), (0, 4), (4, 0), (4, 4), (2, 2))]
  crops += [c[:, :, ::-1] for c in crops]
  logits = np.asarray(model.apply(variables, (np.concatenate(crops) / 255.0 - MEAN) / STD), np.float64)
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  probs = probs.reshape(10, len(images), -1)
  np.testing.assert_allclose(ten, np.mean(probs, axis=0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(five, np.mean(probs[:5], axis=0), rtol=1e-5, atol=1e-6)


def test_why_convolutions_runs(tmp_path):
  config = tiny(claims_why_convolutions.get_config())
  config.claim.update(dict(examples_per_class=(5,), seeds=(0,), max_shift=2, equivariance_images=8))
  results = why_convolutions.run(config, str(tmp_path))
  written = json.load(open(tmp_path / "results.json"))
  assert written.keys() == results.keys()
  assert results["lenet5/num_params"] == 61_706 and results["mlp/num_params"] == 62_110
  assert results["conv1/params"] == 5 * 5 * 6 + 6 and results["conv1/dense_equivalent_params"] == 1024 * 4704 + 4704
  for model in ("lenet5", "mlp"):
    assert 0 <= results[f"{model}/n5/test_accuracy"] <= 1 and 0 <= results[f"{model}/n5/train_accuracy"] <= 1
    assert results[f"{model}/n5/shift_accuracy"][0] == pytest.approx(results[f"{model}/n5/test_accuracy"])
    assert len(results[f"{model}/n5/shift_consistency"]) == 3 and results[f"{model}/n5/shift_consistency"][0] == 1
  assert max(results["equivariance/conv1"]) < 1e-6
  assert os.path.exists(tmp_path / "plots" / "why_convolutions.png")


def test_augmentation_runs(tmp_path):
  config = tiny(claims_augmentation.get_config(), steps=3)
  config.claim.update(dict(set_names=("pca_colour",), seeds=(0,), ensemble_set="pca_colour", ensemble_size=2))
  # pca_colour's eigen-decomposition comes from the (grayscale) training digits: one eigenvalue, eigenvector 1.
  variant = common.variant(config, augment=config.claim.augment_sets.pca_colour)
  _, train_source, _, _, _ = classification.host_input(variant)
  (spec,) = classification.augment_spec(variant, train_source, None)
  assert np.shape(spec["eigvals"]) == (1,) and spec["eigvals"][0] > 0 and abs(spec["eigvecs"][0][0]) == 1
  results = augmentation.run(config, str(tmp_path))
  assert json.load(open(tmp_path / "results.json")).keys() == results.keys()
  assert results["pca_colour/plain_accuracy"] == pytest.approx(results["pca_colour/test_accuracy"])
  assert all(0 <= results[f"pca_colour/{k}_accuracy"] <= 1 for k in ("ten_crop", "five_crop"))
  assert len(results["ensemble/member_accuracies"]) == 2  # seed 0 is the set's own run, seed 1 one more
  assert results["ensemble/member_accuracies"][0] == pytest.approx(results["pca_colour/plain_accuracy"])
  assert min(results["ensemble/member_accuracies"]) - 0.05 <= results["ensemble/accuracy"] <= 1
  assert os.path.exists(tmp_path / "plots" / "augmentation.png")


def test_a_config_of_another_runner_is_named_before_any_work(tmp_path):
  from experiments import cli
  from experiments.configs import lenet5_digits
  with pytest.raises(ValueError, match=r"not a claims.why_convolutions config \(it has no claim\); it is a config of "
                                       r"classification"):
    cli.check_experiment(lenet5_digits.get_config(), "claims.why_convolutions", "F.py")
  with pytest.raises(ValueError, match=r"no claim field\(s\) \['equivariance_images', 'examples_per_class'"):
    why_convolutions.run(claims_augmentation.get_config(), str(tmp_path))
  assert not os.listdir(tmp_path)


def test_evaluate_and_predict_name_the_runs_of_a_claims_workdir(tmp_path):
  from experiments import inference
  (tmp_path / "config.json").write_text(claims_augmentation.get_config().to_json())
  (tmp_path / "none_s0").mkdir()
  (tmp_path / "none_s0" / "config.json").write_text("{}")
  with pytest.raises(inference.RunError, match=r"holds the runs of a claims runner; give one of them: .*none_s0"):
    inference.open_run(str(tmp_path))


def test_gallery_runs(tmp_path):
  from experiments.claims import gallery
  from experiments.configs import claims_gallery, embedding_digits
  config = claims_gallery.get_config()
  digits = embedding_digits.get_config()
  for field in ("dataset", "train_split", "train_labels", "val_split", "val_labels", "test_split", "test_labels"):
    config[field] = digits[field]
  config.model_kwargs.widths, config.embedding_dim = (4, 8), 8
  config.p, config.k, config.batch_size = 4, 2, 8
  config.val_pairs, config.test_pairs, config.n_folds, config.eval_batch_size = 40, 60, 3, 200
  tiny(config, steps=5)
  config.claim.update(dict(gallery_sizes=(1, 2, 4), repeats=3))  # the test part holds 4 identities (digits 6-9)
  results = gallery.run(config, str(tmp_path))
  assert json.load(open(tmp_path / "results.json")).keys() == results.keys()
  assert results["gallery_sizes"] == [1, 2, 4] and results["test_identities"] == 4
  assert results["threshold/top1"][0] == 1.0 >= results["threshold/top1"][-1]  # one enrolled person: always right
  assert results["threshold/top1_at_threshold"][0] >= results["threshold/top1_at_threshold"][-1]
  assert results["threshold/false_accept_rate"][-1] is None  # every identity enrolled: no impostor
  assert results["predicted_top1"][0] == results["predicted_top1_given_genuine"][0] == 1.0
  assert results["threshold/predicted_false_accept_rate"][0] == pytest.approx(
      results["threshold/pair_false_accept_rate"])
  assert 0 <= results["verification/verification_accuracy"] <= 1
  assert os.path.exists(tmp_path / "plots" / "gallery.png")
  assert os.path.exists(tmp_path / "embedding" / "results.json")


def test_anchors_runs(tmp_path):
  from experiments.claims import anchors
  from experiments.configs import claims_anchors
  config = tiny(claims_anchors.get_config(), steps=2)
  config.update(dict(batch_size=4, eval_batch_size=4, eval_limit=4, max_objects=4, num_plot_images=1,
                     checkpoint_every=0, eval_every=0))
  config.model_kwargs.update(dict(widths=(4, 8), deep=False))
  config.claim.update(dict(anchor_counts=(1, 2), collision_images=50))
  results = anchors.run(config, str(tmp_path))
  assert json.load(open(tmp_path / "results.json")).keys() == results.keys()
  assert results["anchor_counts"] == [1, 2] and not any(k.startswith("k3/") for k in results)
  for k in (1, 2):
    sub = json.load(open(tmp_path / f"k{k}" / "results.json"))
    assert len(sub["anchors"]) == k == results[f"k{k}/num_anchors"]
    for key in ("map50", "map50_95", "anchor_mean_iou", "shared_cell_fraction", "dropped_fraction"):
      assert 0 <= results[f"k{k}/{key}"] <= 1, key
    assert all(np.isnan(v) or 0 <= v <= 1 for name in results["class_names"] for v in [results[f"k{k}/map50/{name}"]])
    assert results[f"k{k}/train_images_per_s"] > 0
  assert results["k1/dropped_fraction"] <= results["k1/shared_cell_fraction"]  # one anchor: every shared cell collides
  assert results["k2/dropped_fraction"] <= results["k1/dropped_fraction"]
  assert results["k1/anchor_mean_iou"] < results["k2/anchor_mean_iou"]
  assert os.path.exists(tmp_path / "plots" / "anchors_map.png")
