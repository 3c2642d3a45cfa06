import math

import numpy as np
import pytest

from cnnjax.train.config import OptimizerConfig
from cnnjax.train.optim import make_optimizer, make_schedule


def cfg(**kw):
  return OptimizerConfig(**{"name": "sgd", "learning_rate": 0.1, **kw})


def test_warmup_cosine_matches_formula():
  schedule = make_schedule(cfg(schedule="warmup_cosine", warmup_steps=10), 110)
  assert float(schedule(0)) == 0.0
  assert float(schedule(5)) == pytest.approx(0.05)
  for step in (10, 35, 60, 110):
    expected = 0.05 * (1 + math.cos(math.pi * (step - 10) / 100))
    assert float(schedule(step)) == pytest.approx(expected, abs=1e-7)


def test_step_schedule_decays_at_fractions():
  schedule = make_schedule(cfg(schedule="step", decay_at=(0.5, 0.75), decay_factor=0.1), 100)
  assert [float(schedule(s)) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx(
      [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
  )


def test_constant_with_linear_warmup():
  schedule = make_schedule(cfg(schedule="constant", warmup_steps=4), 100)
  assert [float(schedule(s)) for s in (0, 2, 4, 50)] == pytest.approx([0.0, 0.05, 0.1, 0.1])


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"])
def test_every_optimizer_takes_a_descent_step(name):
  tx = make_optimizer(cfg(name=name, weight_decay=1e-4), 10)
  params = {"w": np.array([1.0, -2.0], np.float32)}
  grads = {"w": np.array([0.5, -0.5], np.float32)}
  updates, _ = tx.update(grads, tx.init(params), params)
  assert np.all(np.sign(updates["w"]) == -np.sign(grads["w"]))


def test_sgd_weight_decay_is_l2_on_the_gradient():
  tx = make_optimizer(cfg(weight_decay=0.01), 10)
  params = {"w": np.array([2.0], np.float32)}
  updates, _ = tx.update({"w": np.array([0.0], np.float32)}, tx.init(params), params)
  np.testing.assert_allclose(updates["w"], [-0.1 * 0.01 * 2.0], rtol=1e-6)


@pytest.mark.parametrize("field,value", [("name", "adagrad"), ("schedule", "linear")])
def test_unknown_names_are_clear_errors(field, value):
  with pytest.raises(ValueError, match=rf"config\.optimizer\.{field}='{value}': expected one of"):
    cfg(**{field: value})
