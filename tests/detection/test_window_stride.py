"""The convolutional sliding-window detector at strides other than its own equals cropping every window."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.detection import sliding_window as sw


@pytest.mark.parametrize("hidden, strides", [((8,), (2, 4, 8, 12)), ((), (8,))])  # (): the stride on the last layer
def test_conv_scores_equal_naive_at_every_stride(hidden, strides):
  model = sw.WindowClassifier(4, features=(4, 8), hidden=hidden)  # the network's own stride is 4
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  images = jax.random.uniform(jax.random.key(1), (2, 56, 48, 3))
  for stride in strides:  # shift-and-stitch, the network's own, strided converted layers
    conv = jax.jit(lambda v, x: sw.conv_window_scores(model, v, x, 32, stride))(variables, images)
    naive = jax.jit(lambda v, x: sw.naive_window_scores(model, v, x, 32, stride))(variables, images)
    assert conv.shape == naive.shape == (2, *sw.window_grid(56, 48, 32, stride), 4)
    np.testing.assert_allclose(conv, naive, atol=1e-5)


def test_stride_neither_multiple_nor_divisor_is_rejected():
  model = sw.WindowClassifier(4, features=(4, 8), hidden=(8,))
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  with pytest.raises(ValueError, match="stride=6"):
    sw.conv_window_scores(model, variables, jnp.zeros((1, 40, 40, 3)), 32, 6)
