"""Face embedding network: a small conv trunk, then a d-dimensional L2-normalised embedding.

Siamese use is the same parameters applied to two inputs (`model.apply(v, x1)`,
`model.apply(v, x2)`). With `pair_head` set, the model also learns the
logistic-regression verifier on pair features (DeepFace's |f_i - f_j| or
chi-square form) and returns the logits of every pair of the batch.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnjax.embedding.losses import PAIR_FORMS, pair_features
from cnnjax.models.layers import ConvBlock, check_choice, check_input, global_avg_pool, max_pool
from cnnjax.models.registry import register


def l2_normalize(x: jnp.ndarray, eps: float = 1e-12) -> jnp.ndarray:
  """x / |x| along the last axis, finite (and differentiable) at x = 0."""
  return x * jnp.reciprocal(jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + eps))


class PairHead(nn.Module):
  """Logistic regression on pair features: logit = w . feat(f_i, f_j) + b (broadcasts over pairs)."""
  form: str = "l1"

  @nn.compact
  def __call__(self, f_i: jnp.ndarray, f_j: jnp.ndarray) -> jnp.ndarray:
    return nn.Dense(1, name="dense")(pair_features(f_i, f_j, self.form))[..., 0]


class EmbeddingNet(nn.Module):
  """Stages of conv-BN-ReLU blocks with 2x2 max pooling, global average pool, dense, L2 norm.

  Attributes:
    embedding_dim: size d of the embedding.
    widths: channels of each stage (each stage halves the resolution after it but the last).
    blocks_per_stage: conv blocks per stage.
    pair_head: None, or 'l1' | 'chi2' to add the pair classifier; then `__call__`
      returns {'embedding': (n, d), 'pair_logits': (n, n)}. 'chi2' needs
      non-negative features, so a ReLU precedes the normalisation.
  """
  embedding_dim: int = 128
  widths: Sequence[int] = (32, 64, 128, 128)
  blocks_per_stage: int = 1
  pair_head: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> Any:
    check_choice("pair_head", self.pair_head, (None, *PAIR_FORMS))
    check_input(x, rank=4, min_size=2 ** (len(self.widths) - 1))
    x = jnp.asarray(x, self.dtype)
    for stage, width in enumerate(self.widths):
      if stage:
        x = max_pool(x, (2, 2), strides=(2, 2))
      for block in range(self.blocks_per_stage):
        x = ConvBlock(width, (3, 3), dtype=self.dtype, name=f"stage{stage + 1}_block{block + 1}")(x, train)
    x = nn.Dense(self.embedding_dim, dtype=self.dtype, name="embedding")(global_avg_pool(x))
    x = x.astype(jnp.float32)
    if self.pair_head == "chi2":
      x = nn.relu(x)
    embedding = l2_normalize(x)
    if self.pair_head is None:
      return embedding
    logits = PairHead(self.pair_head, name="pair_head")(embedding[:, None, :], embedding[None, :, :])
    return {"embedding": embedding, "pair_logits": logits}


@register("embedding_net")
def embedding_net(*, num_classes: int, **kwargs) -> EmbeddingNet:
  """`num_classes` is the embedding size d (there are no classes: identities are open-ended)."""
  return EmbeddingNet(embedding_dim=num_classes, **kwargs)
