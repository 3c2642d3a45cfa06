"""`fit` end to end on a tiny model and generated data: compile count, resume, non-finite losses, freezing."""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from cnnjax import train, transfer
from cnnjax.data import pipeline


class TinyNet(nn.Module):
  num_classes: int = 3

  @nn.compact
  def __call__(self, x, train=False):
    x = nn.relu(nn.Conv(4, (3, 3), name="conv")(x))
    x = nn.BatchNorm(use_running_average=not train, name="bn")(x)
    x = nn.Dropout(0.1, deterministic=not train)(x.mean(axis=(1, 2)))
    return nn.Dense(self.num_classes, name="head")(x)


RNG = np.random.default_rng(0)
DATA = [{"image": RNG.normal(size=(6, 6, 1)).astype(np.float32), "label": np.int64(i % 3)} for i in range(48)]


def config(**overrides):
  c = ml_collections.ConfigDict(dict(
      seed=0, num_steps=12, batch_size=8, log_every=2, eval_every=6, checkpoint_every=4, keep_checkpoints=5,
      optimizer=dict(name="momentum", learning_rate=0.05, schedule="constant"),
  ))
  c.update(overrides)
  return c


def batches_from(data):
  return lambda start: pipeline.batches(data, 8, seed=0, start_step=start)


def xent(outputs, batch):
  loss = optax.softmax_cross_entropy_with_integer_labels(outputs, batch["label"]).mean()
  return loss, {"accuracy": jnp.mean(jnp.argmax(outputs, -1) == batch["label"])}


def eval_fn(state):
  images = jnp.stack([r["image"] for r in DATA])
  logits = state.apply_fn(state.variables, images, train=False)
  return {"eval_accuracy": float(jnp.mean(jnp.argmax(logits, -1) == jnp.array([r["label"] for r in DATA])))}


def fit(workdir, cfg=None, **kwargs):
  kwargs.setdefault("batches", batches_from(DATA))
  return train.fit(cfg or config(), str(workdir), model=TinyNet(), loss_fn=kwargs.pop("loss_fn", xent),
                   eval_fn=eval_fn, **kwargs)


def test_the_train_step_compiles_once_and_writes_its_outputs(tmp_path):
  traces = []

  def counted(outputs, batch):
    traces.append(1)
    return xent(outputs, batch)

  result = fit(tmp_path, loss_fn=counted)
  assert len(traces) == 1, "the train step was traced more than once"
  assert int(result.state.step) == 12
  rows = train.read_metrics(str(tmp_path))
  assert [r["step"] for r in rows if "train_loss" in r] == [2, 4, 6, 8, 10, 12]
  assert [r["step"] for r in rows if "eval_accuracy" in r] == [6, 12]
  last = {k: v for r in rows if r["step"] == 12 for k, v in r.items()}
  assert result.eval_metrics == {"eval_accuracy": last["eval_accuracy"]}
  assert result.train_metrics["train_loss"] == pytest.approx(last["train_loss"])
  assert result.train_time_s == pytest.approx(last["train_time_s"]) and result.train_images_per_s > 0
  assert result.summary()["eval_accuracy"] == last["eval_accuracy"]
  assert json.load(open(tmp_path / "config.json"))["num_steps"] == 12
  assert os.path.exists(tmp_path / "plots" / "curves.png")
  assert os.listdir(tmp_path / "tensorboard")
  assert sorted(int(d) for d in os.listdir(tmp_path / "checkpoints")) == [4, 8, 12]


class Crash(Exception):
  pass


def crash_at(crash_step):
  def batches(start):
    for step, batch in enumerate(batches_from(DATA)(start), start):
      if step == crash_step:
        raise Crash()
      yield batch
  return batches


def test_a_crashed_run_resumes_to_the_same_parameters(tmp_path):
  reference = fit(tmp_path / "reference")
  with pytest.raises(Crash):
    fit(tmp_path / "crashed", batches=crash_at(7))
  assert sorted(os.listdir(tmp_path / "crashed" / "checkpoints")) == ["4"]
  resumed = fit(tmp_path / "crashed").state
  jax.tree.map(np.testing.assert_array_equal, resumed.params, reference.state.params)
  jax.tree.map(np.testing.assert_array_equal, resumed.batch_stats, reference.state.batch_stats)
  steps = [r["step"] for r in train.read_metrics(str(tmp_path / "crashed")) if "train_loss" in r]
  assert steps == [2, 4, 6, 8, 10, 12], "rows logged after the checkpoint must not repeat"


def test_a_damaged_checkpoint_and_a_partial_metrics_line_resume_to_the_same_parameters(tmp_path, caplog):
  reference = fit(tmp_path / "reference")
  with pytest.raises(Crash):
    fit(tmp_path / "victim", batches=crash_at(11))
  os.remove(tmp_path / "victim" / "checkpoints" / "8" / "default" / "_METADATA")
  with open(tmp_path / "victim" / "metrics.jsonl", "a") as f:
    f.write('{"step": 9, "train_lo')  # what a kill in the middle of a write would leave
  resumed = fit(tmp_path / "victim").state
  jax.tree.map(np.testing.assert_array_equal, resumed.params, reference.state.params)
  assert any("dropping its partial last line" in m for m in caplog.messages)
  steps = [r["step"] for r in train.read_metrics(str(tmp_path / "victim")) if "train_loss" in r]
  assert steps == [2, 4, 6, 8, 10, 12]


def with_nan_at(step_with_nan):
  def batches(start):
    for step, batch in enumerate(batches_from(DATA)(start), start):
      if step == step_with_nan:
        batch = {**batch, "image": np.full_like(batch["image"], np.nan)}
      yield batch
  return batches


def test_a_non_finite_loss_stops_the_run_naming_the_step(tmp_path):
  with pytest.raises(train.NonFiniteLossError, match="at step 6"):
    fit(tmp_path, batches=with_nan_at(5))  # the batch of step index 5 is the 6th step
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4"], "only the last good checkpoint remains"


def test_a_failing_final_evaluation_keeps_the_final_checkpoint(tmp_path):
  def broken_eval(state):
    raise RuntimeError("eval broke")

  with pytest.raises(RuntimeError, match="eval broke"):
    train.fit(config(eval_every=0), str(tmp_path), model=TinyNet(), loss_fn=xent, batches=batches_from(DATA),
              eval_fn=broken_eval)
  assert "12" in os.listdir(tmp_path / "checkpoints")


def test_skip_nonfinite_keeps_training(tmp_path):
  state = fit(tmp_path, cfg=config(skip_nonfinite=True), batches=with_nan_at(5)).state
  assert all(np.all(np.isfinite(p)) for p in jax.tree.leaves(state.params))
  skipped = [r["train_skipped"] for r in train.read_metrics(str(tmp_path)) if "train_skipped" in r]
  assert sum(skipped) == pytest.approx(0.5)  # one skipped step in the 2-step window


def test_fine_tuning_a_frozen_trunk_leaves_it_bit_identical(tmp_path):
  pretrained = fit(tmp_path / "pretrain", cfg=config(num_steps=4)).state
  loaded = train.load_variables(str(tmp_path / "pretrain"))
  fresh = TinyNet().init(jax.random.PRNGKey(1), jnp.zeros((1, 6, 6, 1)))
  variables, reinitialised = transfer.merge_pretrained(fresh, loaded, reinit=[r"^params/head/"])
  assert reinitialised == ["params/head/bias", "params/head/kernel"]
  labels = transfer.trainable_labels(variables["params"], freeze_stages=2)  # conv, bn
  assert labels["conv"]["kernel"] == "frozen" and labels["head"]["kernel"] == "trainable"
  tx = transfer.freeze_optimizer(optax.sgd(0.1), labels)
  tuned = fit(tmp_path / "finetune", cfg=config(num_steps=6), init_variables=variables, tx=tx).state
  for name in ("conv", "bn"):
    jax.tree.map(np.testing.assert_array_equal, tuned.params[name], pretrained.params[name])
  assert not np.array_equal(tuned.params["head"]["kernel"], variables["params"]["head"]["kernel"])


def test_merge_pretrained_rejects_a_mismatched_trunk():
  small = TinyNet().init(jax.random.PRNGKey(0), jnp.zeros((1, 6, 6, 1)))
  other = TinyNet(num_classes=5).init(jax.random.PRNGKey(0), jnp.zeros((1, 6, 6, 1)))
  with pytest.raises(ValueError, match=r"params/head/kernel has shape \(4, 3\).*\(4, 5\)"):
    transfer.merge_pretrained(other, small)


@pytest.mark.parametrize("field,value,expected", [
    ("batch_size", 0, "an integer >= 1"),
    ("num_steps", 0, "an integer >= 1"),
    ("keep_checkpoints", 0, "an integer >= 1"),
    ("dtype", "float8", "one of"),
    ("optimizer.learning_rate", -1.0, "a positive number"),
    ("optimizer.name", "adagrad", "one of"),
    ("optimizer.warmup_steps", -1, "an integer >= 0"),
    ("optimizer.warmup_steps", 12, "fewer steps than the run's num_steps=12"),
    ("optimizer.nesterov", True, "one of the optimizer's fields"),
])
def test_bad_config_fields_fail_before_any_compute(tmp_path, field, value, expected):
  cfg = config(dtype="float32")
  cfg.update_from_flattened_dict({field: value}) if "." in field else setattr(cfg, field, value)
  with pytest.raises(ValueError, match=rf"config\.{field}={value!r}: expected {expected}"):
    train.fit(cfg, str(tmp_path), model=TinyNet(), loss_fn=xent, batches=None)
  assert not os.path.exists(tmp_path / "config.json")


def test_a_finished_run_resumed_trains_nothing_and_evaluates_once(tmp_path):
  first = fit(tmp_path)
  again = fit(tmp_path)
  assert int(again.state.step) == 12 and again.train_time_s == 0.0
  assert again.eval_metrics == first.eval_metrics


def test_a_typed_config_built_with_keywords_trains_like_its_configdict(tmp_path):
  typed = train.TrainConfig(num_steps=12, batch_size=8, log_every=2, eval_every=6, checkpoint_every=4,
                            keep_checkpoints=5, optimizer=dict(name="momentum", learning_rate=0.05))
  assert typed == train.TrainConfig.from_config(config())
  from_keywords = fit(tmp_path / "typed", cfg=typed).state
  from_dict = fit(tmp_path / "dict").state
  jax.tree.map(np.testing.assert_array_equal, from_keywords.params, from_dict.params)
  assert json.load(open(tmp_path / "typed" / "config.json"))["optimizer"]["learning_rate"] == 0.05
