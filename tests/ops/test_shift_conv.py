"""shift_conv.conv_general_dilated gives lax.conv_general_dilated's values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from cnnjax.ops import shift_conv

_DN = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("cin,k,stride,padding", [(1, 5, 1, "VALID"), (3, 3, 2, ((1, 1), (1, 1))),
                                                  (3, 3, 1, "SAME"), (6, 3, 1, "SAME")])
def test_values_and_gradients_match_lax(cin, k, stride, padding):
  rng = np.random.default_rng(cin + k)
  x = jnp.asarray(rng.standard_normal((2, 9, 8, cin)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((k, k, cin, 4)), jnp.float32)
  dn = lax.conv_dimension_numbers(x.shape, w.shape, _DN)

  def loss(fn):
    return lambda x, w: jnp.sum(jnp.sin(fn(x, w, (stride, stride), padding, dimension_numbers=dn)))

  want = jax.value_and_grad(loss(lax.conv_general_dilated), argnums=(0, 1))(x, w)
  got = jax.jit(jax.value_and_grad(loss(shift_conv.conv_general_dilated), argnums=(0, 1)))(x, w)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-5)


def test_other_layouts_fall_back_to_lax():
  x = jnp.ones((1, 2, 5, 5))  # NCHW
  w = jnp.ones((3, 2, 3, 3))  # OIHW
  got = shift_conv.conv_general_dilated(x, w, (1, 1), "VALID")
  np.testing.assert_allclose(np.asarray(got), np.asarray(lax.conv_general_dilated(x, w, (1, 1), "VALID")))
