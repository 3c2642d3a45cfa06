"""`cnnjax.models.intermediates`: submodule outputs and inputs by path, sown values, clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import models
from cnnjax.models.intermediates import available, intermediates


@pytest.fixture(scope="module")
def lenet():
  model = models.create("lenet5", num_classes=10)
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 1))
  return model, model.init(jax.random.key(1), x), x


def test_a_head_input_times_its_weights_gives_the_logits(lenet):
  model, variables, x = lenet
  out = intermediates(model, variables, x, ["fc3.input", "conv1", "conv1.input"])
  head = variables["params"]["fc3"]
  np.testing.assert_allclose(out["fc3.input"] @ head["kernel"] + head["bias"], model.apply(variables, x), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_array_equal(out["conv1.input"], x)
  assert out["conv1"].shape == (2, 28, 28, 6)


def test_nested_paths_of_a_backbone():
  model = models.create("resnet20", num_classes=10)
  x = jnp.zeros((1, 8, 8, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  shapes = jax.eval_shape(lambda v: intermediates(model, v, x, ["layer2_0", "layer3_2/conv2"]), variables)
  assert shapes["layer2_0"].shape == (1, 4, 4, 32) and shapes["layer3_2/conv2"].shape == (1, 2, 2, 64)


def test_unknown_names_list_the_available_ones(lenet):
  model, variables, x = lenet
  assert available(model, variables, x)[:2] == ["conv1", "conv2"]
  with pytest.raises(ValueError, match=r"no activation named \['fc9'\]; this model has \['conv1', 'conv2'"):
    intermediates(model, variables, x, ["fc9", "conv1"])
  with pytest.raises(ValueError, match="names is empty"):
    intermediates(model, variables, x, [])
