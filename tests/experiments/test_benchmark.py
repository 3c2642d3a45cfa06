"""The benchmark: PyTorch twins compute what cnnjax computes, timing helpers, and a tiny end-to-end run."""

import json
import os
import sys

import jax
import numpy as np
import pytest
import torch

from cnnjax import models
from cnnjax.data import cropped_decode
import experiments.bench
from experiments.bench import input_pipeline, timing, worker, workloads
from experiments import benchmark
from experiments.bench import torch_twins
from experiments.configs import benchmark_default, benchmark_input


@pytest.fixture(scope="module")
def lenet():
  # momentum=0: the next update is -lr * grad, so one torch step from the same parameters must match.
  return workloads.Classifier("lenet5", batch_size=4, image_shape=(32, 32, 1), momentum=0.0,
                              devices=jax.devices()[:1])


def _twin(name, image_shape, variables):
  params, stats = jax.device_get((variables["params"], variables.get("batch_stats", {})))
  return torch_twins.load_flax_variables(torch_twins.create(name, image_shape=image_shape, num_classes=10),
                                         params, stats)


def test_lenet_twin_takes_the_same_train_step(lenet):
  twin = _twin("lenet5", (32, 32, 1), lenet.state.variables)
  steps = torch_twins.ClassifierSteps(twin, lenet.host_batch["image"], lenet.host_batch["label"],
                                      learning_rate=0.01, momentum=0.0)
  steps.train_step()
  lenet.train_step()
  np.testing.assert_allclose(float(steps.loss), float(lenet.metrics["loss"]), rtol=1e-5)
  params = jax.device_get(lenet.state.params)
  np.testing.assert_allclose(twin.conv1.weight.detach().numpy(),
                             params["conv1"]["kernel"].transpose(3, 2, 0, 1), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(twin.fc1.weight.detach().numpy(), params["fc1"]["kernel"].T, rtol=1e-4, atol=1e-6)


def test_resnet_twin_computes_the_same_training_forward_pass():
  model = models.create("resnet20", num_classes=10)
  x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
  variables = model.init(jax.random.key(0), x)
  logits, _ = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
  twin = _twin("resnet20", (8, 8, 3), variables).train()
  with torch.no_grad():
    out = twin(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
  np.testing.assert_allclose(out, np.asarray(logits), rtol=1e-4, atol=1e-5)


def test_style_twin_gives_the_same_cost_and_step():
  w = workloads.StyleStep(image_size=16, widths=(4, 8, 8, 8, 8), style_layers={"relu1_1": 0.5, "relu3_1": 0.5},
                          content_layer="relu2_1")
  twin = torch_twins.StyleSteps(jax.device_get(w.params), w.content, w.style, content_layer=w.content_layer,
                                style_layers=w.style_layers, alpha=1.0, beta=1e3, learning_rate=0.01)
  twin.step()  # cnnjax took its first step while compiling, from the same image
  np.testing.assert_allclose(float(twin.value), float(w.value), rtol=1e-5)
  np.testing.assert_allclose(twin.image.detach().numpy(), np.asarray(w.image), atol=1e-6)


def test_twin_loading_rejects_a_mismatched_tree():
  params = {"conv1": {"kernel": np.zeros((5, 5, 1, 6)), "bias": np.zeros(6)}}
  with pytest.raises(ValueError, match="parameter names differ"):
    torch_twins.load_flax_variables(torch_twins.create("lenet5", image_shape=(32, 32, 1), num_classes=10), params)
  with pytest.raises(ValueError, match="no PyTorch twin"):
    torch_twins.create("alexnet", image_shape=(32, 32, 3), num_classes=10)


def test_time_interleaved_takes_turns_and_checks_arguments():
  calls = []
  fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
  out = timing.time_interleaved(fns, steps=3, warmup=1)
  assert calls == ["a", "a", "b", "b"] * 3
  assert len(out["a"]["times_s"]) == 3 and out["a"]["min_s"] <= out["a"]["median_s"]
  calls.clear()
  out = timing.time_interleaved(fns, steps=5, warmup=1, turn=3)
  assert calls == ["a"] * 4 + ["b"] * 4 + ["a"] * 3 + ["b"] * 3  # turns of 1 untimed + 3, then 1 + 2
  assert len(out["b"]["times_s"]) == 5
  for bad in [dict(steps=0), dict(steps=2, warmup=-1), dict(steps=2, turn=0)]:
    with pytest.raises(ValueError, match="expected steps >= 1"):
      timing.time_interleaved({"a": lambda: None}, **bad)
  assert timing.peak_memory()["bytes"] > 0


def test_nms_workload_keeps_what_nms_keeps():
  w = workloads.NMS(64, iou_threshold=0.5)
  keep = np.asarray(w.keep)
  kept = keep[keep >= 0]
  boxes = np.asarray(w.boxes)[kept]
  # Kept boxes overlap each other by at most the threshold.
  lt, rb = np.maximum(boxes[:, None, :2], boxes[None, :, :2]), np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
  inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
  area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=-1)
  iou = inter / (area[:, None] + area[None, :] - inter)
  assert np.all(iou[~np.eye(len(kept), dtype=bool)] <= 0.5)


def test_config_errors_name_the_field():
  config = benchmark_default.get_config()
  config.model_names = ("nope",)
  with pytest.raises(ValueError, match="config.model_names"):
    benchmark.run(config, "/nonexistent")
  config = benchmark_default.get_config()
  config.devices = (0,)
  with pytest.raises(ValueError, match="config.devices"):
    benchmark.run(config, "/nonexistent")
  config = benchmark_default.get_config()
  config.train_option_names = ("ema", "swa")
  with pytest.raises(ValueError, match=r"config.train_option_names=.*\['swa'\] not in"):
    benchmark.run(config, "/nonexistent")
  with pytest.raises(ValueError, match=r"options \['swa'\]"):
    workloads.Classifier("lenet5", batch_size=2, image_shape=(32, 32, 1), options={"swa": 1})


def test_run_end_to_end_on_one_and_two_host_devices(tmp_path):
  config = benchmark_default.get_config()
  config.devices, config.model_names, config.steps, config.warmup = (1, 2), ("lenet5",), 2, 0
  config.models.lenet5.image_shape, config.models.lenet5.batch_sizes = (16, 16, 1), (4,)
  config.nms.num_boxes, config.nms.steps, config.style.enabled = (16,), 2, False  # style: tested above
  config.conv_layers.shapes, config.conv_layers.steps = ((2, 6, 16, 32, 3),), 1
  config.train_option_names = ("ema", "grad_accum4")  # the cheap ones to compile; the rest share the code path
  config.fed_steps = 2
  config.jpeg_fed.update(dict(dataset="tiny", steps=2, warmup=1))  # decoded to grey for LeNet-5
  results = benchmark.run(config, str(tmp_path))
  rows = results["classifiers"]
  assert [r["devices"] for r in rows] == [1, 2]
  assert rows[0]["scaling_efficiency"] == pytest.approx(1.0)
  assert rows[0]["ratio_train_torch_nchw"] > 0 and "ratio_train_torch_nchw" not in rows[1]
  assert rows[0]["torch_nchw_loss_rel_diff"] < 1e-5  # the twin started from the same weights and batch
  # The same network on stock Flax layers: same parameters, so the same first loss; timed beside one device only.
  assert rows[0]["stock_flax_loss_rel_diff"] < 1e-6 and rows[0]["ratio_train_stock_flax"] > 0
  assert "ratio_train_stock_flax" not in rows[1]
  assert all(r["train_images_per_s"] > 0 and r["peak_memory_bytes"] > 0 for r in rows)
  assert all(r["fed_train_images_per_s"] > 0 and r["jpeg_fed_train_images_per_s"] > 0 for r in rows)
  assert [r["num_boxes"] for r in results["nms"]] == [16] and results["style"] is None
  assert [(r["option"], r["settings"]) for r in results["train_options"]] == [
      ("ema", {"ema_decay": 0.999}), ("grad_accum4", {"grad_accum_steps": 4})]
  assert all(r["ratio"] == pytest.approx(r["train_step_s"] / r["plain_step_s"]) for r in results["train_options"])
  (layer,) = results["conv_layers"]
  assert (layer["in"], layer["out"]) == (16, 32) and layer["train_ratio"] == pytest.approx(
      layer["train_kernel_ms"] / layer["train_xla_ms"])
  assert json.loads((tmp_path / "results.json").read_text())["classifiers"][1]["devices"] == 2
  table = (tmp_path / "benchmark.md").read_text()
  assert "| lenet5 | 16x16x1 | 4 | float32 | 2 |" in table and "| lenet5 | 4 | grad_accum4 |" in table
  assert "| 2 x 6^2 x 16 -> 32, 3x3 |" in table and "ratio train (stock_flax)" in table
  assert "| lenet5 | 4 | float32 | 2 | " in table and table.count(" | 0 |\n") >= 2  # the fed rows, 0 workers
  assert (tmp_path / "plots" / "benchmark.png").stat().st_size > 0


def test_input_benchmark_times_grain_and_both_decoders(tmp_path):
  c = benchmark_input.input_section()
  # Enough images for several 10 ms ticks of CPU time.
  c.update(dict(dataset="tiny", data_dir=str(tmp_path), image_size=96, batch_size=8, workers=(0,), warmup=1,
                batches=15, rounds=2, tf=False, startup=False))
  results = input_pipeline.run(c, str(tmp_path))
  rows = [*results["grain"], results["whole_decode"]]
  assert [r["workers"] for r in rows] == [0, 0] and results["rounds"] == 2
  assert all(r["images_per_cpu_s"] > 0 and r["cores_for_target"] == 5_500 / r["images_per_cpu_s"] for r in rows)
  table = input_pipeline.markdown(results)
  assert "`CNNJAX_CROPPED_DECODE=0`" in table and "tf.data reference disabled" in table
  assert "CNNJAX_CROPPED_DECODE" not in os.environ and cropped_decode.load() is not None  # switched back on


def test_input_benchmark_rows_are_medians_of_rounds_and_ratios_the_median_round(tmp_path, monkeypatch):
  # Rounds in turns: grain at 1 worker gives 100, 300, 200 img per CPU-s; tf.data at 1 thread 100, 200, 400.
  grain, tf = iter([100.0, 300.0, 200.0]), iter([100.0, 200.0, 400.0])
  row = lambda rate, **kw: {"images_per_s": rate, "images_per_cpu_s": rate, **kw}
  monkeypatch.setattr(input_pipeline, "measure_grain", lambda *a: row(next(grain), workers=1))
  monkeypatch.setattr(input_pipeline, "measure_whole_decode", lambda *a: row(50.0, workers=0))
  monkeypatch.setattr(input_pipeline, "measure_tf", lambda *a: {"rows": [row(next(tf), threads=1)]})
  c = benchmark_input.input_section()
  c.update(dict(dataset="tiny", data_dir=str(tmp_path), workers=(1,), rounds=3, startup=False))
  results = input_pipeline.run(c, str(tmp_path))
  (grain_row,), (tf_row,) = results["grain"], results["tf"]["rows"]
  assert grain_row["images_per_cpu_s"] == 200 and tf_row["images_per_cpu_s"] == 200
  assert grain_row["ratios_cpu_vs_tf"] == [0.5, 1.0, 1.5] and grain_row["ratio_cpu_vs_tf"] == 1.0
  assert "| 1.00 (0.50-1.50) |" in input_pipeline.markdown(results)


def test_the_worker_runs_where_torch_is_absent(monkeypatch):
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError, as on a machine without it
  monkeypatch.delitem(sys.modules, "experiments.bench.torch_twins", raising=False)
  monkeypatch.delattr(experiments.bench, "torch_twins", raising=False)  # else `from .. import` finds it there
  config = benchmark_default.get_config()
  config.model_names, config.steps, config.warmup = ("lenet5",), 1, 0
  config.models.lenet5.image_shape, config.models.lenet5.batch_sizes = (16, 16, 1), (4,)
  config = config.to_dict()
  assert worker._torch(config, "cpu") == (None, "torch is not installed")
  (row,) = worker.classifier_rows(config, None, None, "cpu")
  assert row["ratio_train_stock_flax"] > 0 and not any(k.startswith("ratio_train_torch") for k in row)
