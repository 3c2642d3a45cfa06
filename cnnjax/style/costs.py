"""Neural style transfer costs (Gatys et al. 2015, normalised as in DESIGN.md).

Every cost takes single-image activations `[H, W, C]`; a leading batch axis of
size 1 is accepted and dropped.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp


def _hwc(a: jax.Array, name: str) -> jax.Array:
  if a.ndim == 4 and a.shape[0] == 1:
    a = a[0]
  if a.ndim != 3:
    raise ValueError(f"{name}.shape={tuple(a.shape)}: expected [H, W, C] (or [1, H, W, C])")
  return a


def gram_matrix(a: jax.Array) -> jax.Array:
  """Unnormalised Gram matrix `A^T A` of the `[H*W, C]` unrolled activations: `[C, C]`."""
  a = _hwc(a, "a")
  flat = a.reshape(-1, a.shape[-1])
  return flat.T @ flat


def content_cost(a_C: jax.Array, a_G: jax.Array) -> jax.Array:
  """`sum((a_C - a_G)^2) / (4 nH nW nC)`."""
  a_C, a_G = _hwc(a_C, "a_C"), _hwc(a_G, "a_G")
  _same_shape(a_C, a_G, "a_C", "a_G")
  n_h, n_w, n_c = a_C.shape
  return jnp.sum((a_C - a_G) ** 2) / (4.0 * n_h * n_w * n_c)


def gram_cost(gram_S: jax.Array, a_G: jax.Array) -> jax.Array:
  """Style cost of one layer against a precomputed style Gram matrix `gram_S` `[C, C]`."""
  a_G = _hwc(a_G, "a_G")
  n_h, n_w, n_c = a_G.shape
  if gram_S.shape != (n_c, n_c):
    raise ValueError(f"gram_S.shape={tuple(gram_S.shape)}: expected ({n_c}, {n_c}) to match a_G's channels")
  return jnp.sum((gram_S - gram_matrix(a_G)) ** 2) / (4.0 * n_c**2 * (n_h * n_w) ** 2)


def style_layer_cost(a_S: jax.Array, a_G: jax.Array) -> jax.Array:
  """`sum((G_S - G_G)^2) / (4 nC^2 (nH nW)^2)`."""
  a_S, a_G = _hwc(a_S, "a_S"), _hwc(a_G, "a_G")
  _same_shape(a_S, a_G, "a_S", "a_G")
  return gram_cost(gram_matrix(a_S), a_G)


def style_cost_from_grams(grams_S: Mapping[str, jax.Array], acts_G: Mapping[str, jax.Array],
                          layer_weights: Mapping[str, float]) -> jax.Array:
  """Weighted sum over layers of `gram_cost(grams_S[l], acts_G[l])`."""
  _check_layers(layer_weights, grams_S, "grams_S")
  _check_layers(layer_weights, acts_G, "acts_G")
  return sum(w * gram_cost(grams_S[l], acts_G[l]) for l, w in layer_weights.items())


def style_cost(acts_S: Mapping[str, jax.Array], acts_G: Mapping[str, jax.Array],
               layer_weights: Mapping[str, float]) -> jax.Array:
  """Weighted multi-layer style cost: `sum_l w_l * style_layer_cost(acts_S[l], acts_G[l])`."""
  _check_layers(layer_weights, acts_S, "acts_S")
  grams = {l: gram_matrix(acts_S[l]) for l in layer_weights}
  return style_cost_from_grams(grams, acts_G, layer_weights)


def total_variation(image: jax.Array) -> jax.Array:
  """Squared total variation: sum of squared differences between neighbouring pixels."""
  image = _hwc(image, "image")
  return jnp.sum(jnp.diff(image, axis=0) ** 2) + jnp.sum(jnp.diff(image, axis=1) ** 2)


def total_cost(j_content: jax.Array, j_style: jax.Array, alpha: float = 10.0, beta: float = 40.0) -> jax.Array:
  """`alpha * j_content + beta * j_style`."""
  return alpha * j_content + beta * j_style


def _same_shape(a, b, na, nb):
  if a.shape != b.shape:
    raise ValueError(f"{na}.shape={tuple(a.shape)} and {nb}.shape={tuple(b.shape)}: expected equal shapes")


def _check_layers(layer_weights, acts, name):
  missing = [l for l in layer_weights if l not in acts]
  if missing:
    raise ValueError(f"{name} lacks layers {missing}; expected every layer of layer_weights "
                     f"({list(layer_weights)})")
