"""Classification with localization, and landmark heads, on a small conv trunk."""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnjax.models.layers import ConvBlock, check_input, global_avg_pool, max_pool
from cnnjax.models.registry import register


class ConvTrunk(nn.Module):
  """Conv-BN-ReLU blocks, a 2x2 max pool after each, then global average pooling: `(N, H, W, C) -> (N, F)`."""
  widths: Sequence[int] = (16, 32, 64, 64)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    for w in self.widths:
      x = ConvBlock(w, (3, 3), dtype=self.dtype)(x, train)
      x = max_pool(x, (2, 2), strides=(2, 2))
    return global_avg_pool(x)


class LocalizationHead(nn.Module):
  """`p_c` (objectness logit), the box (normalised cx, cy, w, h in [0, 1]) and class logits."""
  num_classes: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, features: jnp.ndarray) -> dict[str, jnp.ndarray]:
    out = nn.Dense(1 + 4 + self.num_classes, dtype=self.dtype)(features).astype(jnp.float32)
    return {"objectness": out[:, 0], "box": nn.sigmoid(out[:, 1:5]), "logits": out[:, 5:]}


class LandmarkHead(nn.Module):
  """`num_landmarks` (x, y) points (normalised, in [0, 1]) and a presence logit for each."""
  num_landmarks: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, features: jnp.ndarray) -> dict[str, jnp.ndarray]:
    out = nn.Dense(3 * self.num_landmarks, dtype=self.dtype)(features).astype(jnp.float32)
    k = self.num_landmarks
    return {"points": nn.sigmoid(out[:, :2 * k]).reshape(-1, k, 2), "presence": out[:, 2 * k:]}


class LocalizationNet(nn.Module):
  """A `ConvTrunk`, a hidden dense layer, a localization head and (with `num_landmarks` > 0) a landmark head.

  Returns:
    A dict with the keys of `LocalizationHead` (and of `LandmarkHead`).
  """
  num_classes: int
  num_landmarks: int = 0
  widths: Sequence[int] = (16, 32, 64, 64)
  hidden: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> dict[str, jnp.ndarray]:
    check_input(x, rank=4, min_size=2 ** len(self.widths))
    x = ConvTrunk(self.widths, dtype=self.dtype)(x.astype(self.dtype), train)
    x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x))
    out = LocalizationHead(self.num_classes, dtype=self.dtype)(x)
    if self.num_landmarks:
      out.update(LandmarkHead(self.num_landmarks, dtype=self.dtype)(x))
    return out


@register("localizer")
def localizer(*, num_classes: int, **kwargs) -> LocalizationNet:
  """Classification with localization (and landmarks with `num_landmarks`) on a small conv trunk."""
  return LocalizationNet(num_classes=num_classes, **kwargs)
