"""EMA of the parameters, gradient accumulation, logged learning rate / gradient norm, profiling."""

import glob
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from cnnjax import train
from cnnjax.data import pipeline
from cnnjax.train.checkpoint import Checkpointer
from cnnjax.train.state import create_train_state
from cnnjax.train.step import make_train_step

RNG = np.random.default_rng(0)
IMAGES = RNG.normal(size=(8, 5, 5, 2)).astype(np.float32)
LABELS = (np.arange(8) % 3).astype(np.int32)


class NoBatchNorm(nn.Module):
  """Conv + Dense, no BatchNorm: its per-example losses do not depend on the rest of the batch."""

  @nn.compact
  def __call__(self, x, train=False):
    x = nn.relu(nn.Conv(4, (3, 3))(x))
    return nn.Dense(3)(x.reshape((x.shape[0], -1)))


def xent(outputs, batch):
  loss = optax.softmax_cross_entropy_with_integer_labels(outputs, batch["label"]).mean()
  return loss, {"accuracy": jnp.mean(jnp.argmax(outputs, -1) == batch["label"])}


def new_state(tx, **kwargs):
  return create_train_state(NoBatchNorm(), tx, jax.random.PRNGKey(0), jnp.asarray(IMAGES), **kwargs)


def run_steps(state, steps, **step_kwargs):
  step = jax.jit(make_train_step(xent, **step_kwargs))
  batch = {"image": jnp.asarray(IMAGES), "label": jnp.asarray(LABELS)}
  history = []
  for _ in range(steps):
    state, metrics = step(state, batch)
    history.append((jax.device_get(state.params), jax.device_get(metrics)))
  return state, history


@pytest.mark.parametrize("k", [2, 4])
def test_k_micro_batches_give_the_update_of_the_whole_batch(k):
  tx = optax.sgd(0.5, momentum=0.9)
  whole, whole_history = run_steps(new_state(tx), 2)
  accumulated, accumulated_history = run_steps(new_state(tx), 2, grad_accum_steps=k)
  for (p1, m1), (pk, mk) in zip(whole_history, accumulated_history):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), p1, pk)
    for key in ("loss", "accuracy", "grad_norm"):
      np.testing.assert_allclose(m1[key], mk[key], rtol=1e-5)


def test_grad_accum_steps_must_split_the_batch():
  with pytest.raises(ValueError, match="does not split into grad_accum_steps=3"):
    run_steps(new_state(optax.sgd(0.1)), 1, grad_accum_steps=3)
  with pytest.raises(ValueError, match="grad_accum_steps=0"):
    make_train_step(xent, grad_accum_steps=0)


def test_ema_follows_its_recurrence():
  decay = 0.8
  state = new_state(optax.adam(0.05), ema_decay=decay)
  initial = jax.device_get(state.params)
  state, history = run_steps(state, 4)
  expected = jax.tree.map(np.asarray, initial)
  for params, _ in history:  # a NumPy loop over the raw parameters after each update
    expected = jax.tree.map(lambda e, p: decay * e + (1 - decay) * np.asarray(p), expected, params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), state.ema_params, expected)
  assert not np.allclose(jax.tree.leaves(state.ema_params)[0], jax.tree.leaves(state.params)[0])


def test_no_ema_by_default_and_bad_decay():
  state = new_state(optax.sgd(0.1))
  assert state.ema_params == {} and state.ema_decay == 0.0
  with pytest.raises(ValueError, match="moving average"):
    state.with_ema_params()
  with pytest.raises(ValueError, match="ema_decay=1.0"):
    new_state(optax.sgd(0.1), ema_decay=1.0)


def test_learning_rate_and_gradient_norm_are_step_metrics():
  schedule = optax.linear_schedule(0.1, 0.0, 10)
  state = new_state(optax.sgd(schedule))
  before = jax.device_get(state.params)
  _, history = run_steps(state, 3, learning_rate_fn=schedule)
  assert [float(m["learning_rate"]) for _, m in history] == pytest.approx([0.1, 0.09, 0.08])
  # Plain SGD: the first update is -lr * grad, so the gradient norm is |update| / lr.
  update = jax.tree.map(lambda a, b: np.asarray(a) - np.asarray(b), history[0][0], before)
  norm = np.sqrt(sum(np.sum(u.astype(np.float64) ** 2) for u in jax.tree.leaves(update))) / 0.1
  assert float(history[0][1]["grad_norm"]) == pytest.approx(norm, rel=1e-4)


def fit_config(**overrides):
  c = ml_collections.ConfigDict(dict(
      seed=0, num_steps=4, batch_size=8, log_every=2, eval_every=2, checkpoint_every=4, keep_checkpoints=1,
      tensorboard=False, optimizer=dict(name="sgd", learning_rate=0.1, schedule="cosine"),
  ))
  c.update(overrides)
  return c


def eval_fn(state):
  logits = state.apply_fn(state.variables, jnp.asarray(IMAGES), train=False)
  return {"eval_accuracy": float(jnp.mean(jnp.argmax(logits, -1) == LABELS))}


def test_fit_with_every_option_on(tmp_path):
  data = [{"image": image, "label": label} for image, label in zip(IMAGES, LABELS)]
  cfg = fit_config(ema_decay=0.5, grad_accum_steps=2, profile_steps=(2, 3))
  state = train.fit(cfg, str(tmp_path), model=NoBatchNorm(), loss_fn=xent, eval_fn=eval_fn,
                    batches=lambda start: pipeline.batches(data, 8, seed=0, start_step=start)).state
  assert glob.glob(str(tmp_path / "profile" / "**" / "*.xplane.pb"), recursive=True), "no trace written"
  rows = train.read_metrics(str(tmp_path))
  schedule = optax.cosine_decay_schedule(0.1, 4)
  lr = {r["step"]: r["train_learning_rate"] for r in rows if "train_learning_rate" in r}
  assert lr == pytest.approx({2: np.mean([schedule(0), schedule(1)]), 4: np.mean([schedule(2), schedule(3)])})
  assert all(r["train_grad_norm"] > 0 for r in rows if "train_grad_norm" in r)
  evals = [r for r in rows if "eval_accuracy" in r]
  assert [r["step"] for r in evals] == [2, 4] and all("ema_eval_accuracy" in r for r in evals)
  # The checkpoint holds the moving average: restored into a fresh state it equals the run's.
  fresh = new_state(optax.sgd(0.1), ema_decay=0.5)
  fresh = fresh.replace(opt_state=state.tx.init(fresh.params), tx=state.tx)
  checkpointer = Checkpointer(str(tmp_path / "checkpoints"))
  restored = checkpointer.restore(fresh)
  checkpointer.close()
  jax.tree.map(np.testing.assert_array_equal, restored.ema_params, state.ema_params)


@pytest.mark.parametrize("field, value, named, expected", [
    ("ema_decay", 1.0, "ema_decay", r"\[0.0, 1.0\)"),
    ("grad_accum_steps", 3, "batch_size", "a multiple of grad_accum_steps=3"),
    ("profile_steps", (3, 9), "profile_steps", "last <= num_steps"),
])
def test_bad_option_fields_fail_before_any_compute(field, value, named, expected):
  with pytest.raises(ValueError, match=f"config.{named}=.*expected .*{expected}"):
    train.TrainConfig.from_config(fit_config(**{field: value}))


def test_a_micro_batch_the_devices_do_not_divide_is_named(monkeypatch):
  monkeypatch.setattr(jax, "device_count", lambda: 2)
  with pytest.raises(ValueError, match=r"config.batch_size=8: expected .*device count times grad_accum_steps"):
    train.check_batch_size(8, grad_accum_steps=8)
