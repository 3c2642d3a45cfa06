"""The embedding network: registry, shapes and parameter counts (no compile), unit norm, pair head."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import models
from cnnjax.models.embedding import PairHead, l2_normalize

WIDTHS = (4, 8)


def _expected_params(d, widths, in_ch=3, pair=False):
  count, prev = 0, in_ch
  for w in widths:
    count += 9 * prev * w + 2 * w  # conv without bias, BN scale and bias
    prev = w
  count += prev * d + d
  return count + (d + 1 if pair else 0)


@pytest.mark.parametrize("pair_head", [None, "l1"])
def test_shapes_and_param_counts(pair_head):
  model = models.create("embedding_net", num_classes=16, widths=WIDTHS, pair_head=pair_head)
  x = jax.ShapeDtypeStruct((5, 12, 12, 3), jnp.float32)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x.shape)))
  assert models.count_params(variables["params"]) == _expected_params(16, WIDTHS, pair=pair_head is not None)
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros(x.shape)), variables)
  if pair_head is None:
    assert out.shape == (5, 16)
  else:
    assert out["embedding"].shape == (5, 16) and out["pair_logits"].shape == (5, 5)


@pytest.fixture(scope="module")
def chi2_model_and_vars():
  model = models.create("embedding_net", num_classes=8, widths=WIDTHS, pair_head="chi2")
  x = np.random.default_rng(0).uniform(size=(4, 8, 8, 3)).astype(np.float32)
  variables = jax.jit(model.init)(jax.random.key(0), x)
  return model, variables, x


def test_embeddings_are_unit_norm_non_negative_and_pair_logits_match_the_head(chi2_model_and_vars):
  model, variables, x = chi2_model_and_vars
  out = jax.jit(model.apply)(variables, x)
  e = np.asarray(out["embedding"])
  np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
  assert np.all(e >= 0)
  dense = variables["params"]["pair_head"]["dense"]
  w, b = np.asarray(dense["kernel"])[:, 0], float(dense["bias"][0])
  feats = (e[:, None] - e[None]) ** 2 / (e[:, None] + e[None] + 1e-6)
  np.testing.assert_allclose(out["pair_logits"], feats @ w + b, rtol=1e-4, atol=1e-6)
  # The same head applied to two separate lists of embeddings (how verification scores pairs).
  head = PairHead("chi2").apply({"params": variables["params"]["pair_head"]}, e[:2], e[2:])
  np.testing.assert_allclose(head, np.asarray(out["pair_logits"])[[0, 1], [2, 3]], rtol=1e-4, atol=1e-6)


def test_l2_normalize_is_finite_at_zero():
  g = jax.jit(jax.grad(lambda x: jnp.sum(l2_normalize(x))))(jnp.zeros((1, 3)))
  assert np.all(np.isfinite(g))


def test_bad_input_raises():
  with pytest.raises(ValueError, match="pair_head must be one of"):
    jax.eval_shape(lambda: models.create("embedding_net", num_classes=4, pair_head="cos").init(
        jax.random.key(0), jnp.zeros((1, 8, 8, 3))))
  with pytest.raises(ValueError, match="rank 4"):
    jax.eval_shape(lambda: models.create("embedding_net", num_classes=4).init(
        jax.random.key(0), jnp.zeros((8, 8, 3))))
  assert "embedding_net" in models.list_models()
