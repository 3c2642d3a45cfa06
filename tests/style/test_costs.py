"""Style-transfer costs against NumPy written here."""

import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.style import (content_cost, gram_matrix, style_cost, style_layer_cost, total_cost,
                          total_variation)

rng = np.random.default_rng(0)


def np_gram(a):
  flat = a.reshape(-1, a.shape[-1])
  g = np.zeros((a.shape[-1],) * 2)
  for v in flat:  # sum of outer products, a different route from A^T A
    g += np.outer(v, v)
  return g


def test_gram_matrix():
  a = rng.normal(size=(3, 4, 5)).astype(np.float32)
  np.testing.assert_allclose(gram_matrix(jnp.asarray(a)), np_gram(a), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(gram_matrix(jnp.asarray(a[None])), np_gram(a), rtol=1e-5, atol=1e-5)


def test_content_and_style_layer_cost():
  a_c, a_g = rng.normal(size=(2, 3, 4, 6)).astype(np.float32)
  n_h, n_w, n_c = a_c.shape
  want = sum((x - y) ** 2 for x, y in zip(a_c.ravel(), a_g.ravel())) / (4 * n_h * n_w * n_c)
  np.testing.assert_allclose(content_cost(a_c, a_g), want, rtol=1e-5)
  gs, gg = np_gram(a_c), np_gram(a_g)
  want = ((gs - gg) ** 2).sum() / (4 * n_c**2 * (n_h * n_w) ** 2)
  np.testing.assert_allclose(style_layer_cost(a_c, a_g), want, rtol=1e-5)
  assert float(style_layer_cost(a_c, a_c)) == 0.0


def test_weighted_style_cost_total_and_tv():
  acts_s = {"a": rng.normal(size=(4, 4, 3)), "b": rng.normal(size=(2, 2, 5))}
  acts_g = {k: rng.normal(size=v.shape) for k, v in acts_s.items()}
  w = {"a": 0.3, "b": 0.7}
  want = 0.0
  for k in w:
    h, ww, c = acts_s[k].shape
    want += w[k] * ((np_gram(acts_s[k]) - np_gram(acts_g[k])) ** 2).sum() / (4 * c**2 * (h * ww) ** 2)
  np.testing.assert_allclose(style_cost(acts_s, acts_g, w), want, rtol=1e-5)
  assert float(total_cost(2.0, 3.0)) == 10 * 2 + 40 * 3
  assert float(total_cost(2.0, 3.0, alpha=1, beta=2)) == 8
  img = rng.uniform(size=(5, 6, 3))
  tv = sum((img[i + 1, j] - img[i, j]) ** 2 for i in range(4) for j in range(6)).sum()
  tv += sum((img[i, j + 1] - img[i, j]) ** 2 for i in range(5) for j in range(5)).sum()
  np.testing.assert_allclose(total_variation(img), tv, rtol=1e-5)


def test_bad_input():
  with pytest.raises(ValueError, match="a.shape"):
    gram_matrix(jnp.zeros((2, 3)))
  with pytest.raises(ValueError, match="equal shapes"):
    content_cost(jnp.zeros((2, 2, 3)), jnp.zeros((2, 2, 4)))
  with pytest.raises(ValueError, match="lacks layers"):
    style_cost({"a": jnp.zeros((2, 2, 3))}, {}, {"a": 1.0})
