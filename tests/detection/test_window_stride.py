"""The convolutional sliding-window detector at strides other than its own equals cropping every window."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.detection import sliding_window as sw


@pytest.mark.parametrize("hidden", [(8,), ()])
def test_conv_scores_equal_naive_at_every_stride(hidden):
  model = sw.WindowClassifier(4, features=(4, 8), hidden=hidden)  # the network's own stride is 4
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  images = jax.random.uniform(jax.random.key(1), (2, 56, 48, 3))
  for stride in (1, 2, 4, 8, 12):
    conv = sw.conv_window_scores(model, variables, images, 32, stride)
    naive = sw.naive_window_scores(model, variables, images, 32, stride)
    assert conv.shape == naive.shape == (2, *sw.window_grid(56, 48, 32, stride), 4)
    np.testing.assert_allclose(conv, naive, atol=1e-5)


def test_stride_neither_multiple_nor_divisor_is_rejected():
  model = sw.WindowClassifier(4, features=(4, 8), hidden=(8,))
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  with pytest.raises(ValueError, match="stride=6"):
    sw.conv_window_scores(model, variables, jnp.zeros((1, 40, 40, 3)), 32, 6)
