"""The triplet family (course definition, online mining, random triplets) and the binary pair loss.

Distances are squared Euclidean by default (FaceNet, on L2-normalised embeddings
with margin 0.2); `squared=False` gives plain Euclidean distances, whose square
root is made safe at zero so that identical embeddings get a zero (not NaN)
gradient. `optax.losses.triplet_margin_loss` computes
`max(sqrt(|a-p|^2 + eps) - sqrt(|a-n|^2 + eps) + margin, 0)` per triplet: plain
distances only, on given triplets. It serves `random_triplet_loss(squared=False)`;
the course's `triplet_loss` and the squared forms need squared distances, and
the mining losses work on the whole distance matrix, so they compute their own.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

PAIR_FORMS = ("l1", "chi2")


def triplet_loss(anchor: jax.Array, positive: jax.Array, negative: jax.Array, alpha: float = 0.2) -> jax.Array:
  """The course's triplet loss: sum over the batch of max(|a-p|^2 - |a-n|^2 + alpha, 0).

  Args:
    anchor, positive, negative: embeddings of shape (batch, d).
    alpha: the margin.
  """
  for name, x in (("anchor", anchor), ("positive", positive), ("negative", negative)):
    if jnp.ndim(x) != 2 or jnp.shape(x) != jnp.shape(anchor):
      raise ValueError(f"{name} must have shape (batch, d) equal to anchor's {jnp.shape(anchor)}, "
                       f"got {jnp.shape(x)}")
  pos = jnp.sum(jnp.square(anchor - positive), axis=-1)
  neg = jnp.sum(jnp.square(anchor - negative), axis=-1)
  return jnp.sum(jnp.maximum(pos - neg + alpha, 0.0))


def pairwise_distances(embeddings: jax.Array, squared: bool = True) -> jax.Array:
  """(n, n) matrix of (squared) Euclidean distances, exactly zero on the diagonal."""
  diff = embeddings[:, None, :] - embeddings[None, :, :]
  d2 = jnp.sum(jnp.square(diff), axis=-1)
  if squared:
    return d2
  # sqrt has an infinite derivative at 0: take it of 1 there and zero the result.
  zero = d2 <= 0.0
  return jnp.where(zero, 0.0, jnp.sqrt(jnp.where(zero, 1.0, d2)))


def batch_all_triplet_loss(embeddings: jax.Array, labels: jax.Array, margin: float = 0.2,
                           squared: bool = True) -> tuple[jax.Array, jax.Array]:
  """Mean loss over all valid in-batch triplets whose loss is positive.

  Returns:
    (loss, fraction of valid triplets with a positive loss).
  """
  _check_batch(embeddings, labels)
  d = pairwise_distances(embeddings, squared)
  pos, neg = _masks(labels)
  valid = pos[:, :, None] & neg[:, None, :]
  loss = jnp.where(valid, jnp.maximum(d[:, :, None] - d[:, None, :] + margin, 0.0), 0.0)
  active = jnp.sum(loss > 1e-16)
  mean = jnp.sum(loss) / jnp.maximum(active, 1)
  return mean, active / jnp.maximum(jnp.sum(valid), 1)


def batch_hard_triplet_loss(embeddings: jax.Array, labels: jax.Array, margin: float = 0.2,
                            squared: bool = True) -> jax.Array:
  """Per anchor, the farthest positive against the closest negative; the mean over anchors."""
  _check_batch(embeddings, labels)
  d = pairwise_distances(embeddings, squared)
  pos, neg = _masks(labels)
  hardest_pos = jnp.max(jnp.where(pos, d, 0.0), axis=1)
  hardest_neg = jnp.min(jnp.where(neg, d, jnp.inf), axis=1)
  # Anchors lacking a positive or a negative (impossible in a P x K batch) do not count.
  usable = jnp.any(pos, axis=1) & jnp.any(neg, axis=1)
  loss = jnp.where(usable, jnp.maximum(hardest_pos - jnp.where(usable, hardest_neg, 0.0) + margin, 0.0), 0.0)
  return jnp.sum(loss) / jnp.maximum(jnp.sum(usable), 1)


def semihard_triplet_loss(embeddings: jax.Array, labels: jax.Array, margin: float = 0.2,
                          squared: bool = True) -> jax.Array:
  """Per positive pair (a, p), the closest negative farther than p (else the farthest); mean over pairs."""
  _check_batch(embeddings, labels)
  d = pairwise_distances(embeddings, squared)
  pos, neg = _masks(labels)
  d_ap = d[:, :, None]
  d_an = d[:, None, :]
  semihard = neg[:, None, :] & (d_an > d_ap)
  closest_semihard = jnp.min(jnp.where(semihard, d_an, jnp.inf), axis=2)
  farthest_neg = jnp.max(jnp.where(neg, d, -jnp.inf), axis=1)[:, None]
  chosen = jnp.where(jnp.any(semihard, axis=2), closest_semihard, farthest_neg)
  usable = pos & jnp.any(neg, axis=1)[:, None]
  loss = jnp.where(usable, jnp.maximum(d - jnp.where(usable, chosen, 0.0) + margin, 0.0), 0.0)
  return jnp.sum(loss) / jnp.maximum(jnp.sum(usable), 1)


def random_triplet_loss(embeddings: jax.Array, triplets: jax.Array, margin: float = 0.2,
                        squared: bool = True) -> jax.Array:
  """Mean triplet loss over given (anchor, positive, negative) index rows, e.g. drawn at random.

  Args:
    embeddings: (n, d).
    triplets: int (t, 3) indices into `embeddings`.
  """
  if jnp.ndim(triplets) != 2 or jnp.shape(triplets)[1] != 3:
    raise ValueError(f"triplets must have shape (t, 3), got {jnp.shape(triplets)}")
  a, p, n = (embeddings[triplets[:, i]] for i in range(3))
  if squared:
    return triplet_loss(a, p, n, alpha=margin) / triplets.shape[0]
  return jnp.mean(optax.losses.triplet_margin_loss(a, p, n, margin=margin))


def pair_features(f_i: jax.Array, f_j: jax.Array, form: str = "l1", eps: float = 1e-6) -> jax.Array:
  """Features of a pair for the logistic-regression verifier: |f_i - f_j| or (f_i - f_j)^2 / (f_i + f_j).

  The chi-square form assumes non-negative embeddings (DeepFace); `eps` keeps 0/0 finite.
  Broadcasts, so `f[:, None]` against `f[None, :]` gives every pair of a batch.
  """
  if form == "l1":
    return jnp.abs(f_i - f_j)
  if form == "chi2":
    return jnp.square(f_i - f_j) / (f_i + f_j + eps)
  raise ValueError(f"form must be one of {PAIR_FORMS}, got {form!r}")


def binary_pair_loss(pair_logits: jax.Array, labels: jax.Array, balanced: bool = True) -> tuple[jax.Array, jax.Array]:
  """Sigmoid cross-entropy of 'same person' over every pair i < j of a batch.

  Args:
    pair_logits: (n, n) logits of the pair classifier.
    labels: (n,) identities.
    balanced: weight same and different pairs equally (a P x K batch has few same pairs).

  Returns:
    (loss, accuracy of the pair decisions at logit 0).
  """
  n = jnp.shape(labels)[0]
  if jnp.shape(pair_logits) != (n, n):
    raise ValueError(f"pair_logits must have shape ({n}, {n}) to match labels, got {jnp.shape(pair_logits)}")
  same = labels[:, None] == labels[None, :]
  upper = jnp.triu(jnp.ones((n, n), bool), k=1)
  xent = optax.sigmoid_binary_cross_entropy(pair_logits, same.astype(pair_logits.dtype))
  if balanced:
    n_same = jnp.maximum(jnp.sum(same & upper), 1)
    n_diff = jnp.maximum(jnp.sum(~same & upper), 1)
    weight = jnp.where(same, 0.5 / n_same, 0.5 / n_diff) * upper
  else:
    weight = upper / jnp.sum(upper)
  accuracy = jnp.sum(((pair_logits > 0) == same) * upper) / jnp.sum(upper)
  return jnp.sum(weight * xent), accuracy


def _masks(labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(positive mask: same label, i != j; negative mask: different label)."""
  same = labels[:, None] == labels[None, :]
  return same & ~jnp.eye(labels.shape[0], dtype=bool), ~same


def _check_batch(embeddings: jax.Array, labels: jax.Array) -> None:
  """Shape checks always; identity checks when the labels are concrete (outside jit)."""
  if jnp.ndim(embeddings) != 2:
    raise ValueError(f"embeddings must have shape (batch, d), got {jnp.shape(embeddings)}")
  if jnp.shape(labels) != jnp.shape(embeddings)[:1]:
    raise ValueError(f"labels must have shape ({jnp.shape(embeddings)[0]},) to match embeddings, "
                     f"got {jnp.shape(labels)}")
  if isinstance(labels, jax.core.Tracer):
    return
  _, counts = np.unique(np.asarray(labels), return_counts=True)
  if len(counts) < 2:
    raise ValueError(f"labels must hold at least two identities for triplet mining, got {len(counts)}")
  if counts.min() < 2:
    raise ValueError(f"every identity in labels needs at least two images for triplet mining; "
                     f"{int(np.sum(counts < 2))} of {len(counts)} have one")


LOSSES = ("semihard", "batch_hard", "batch_all", "random", "binary")


def make_loss_fn(name: str, *, margin: float = 0.2, squared: bool = True, balanced: bool = True):
  """`(outputs, batch) -> (loss, metrics)` for `fit`, by loss name.

  'random' reads the triplets drawn by the sampler from `batch['triplets']`;
  'binary' needs a model with a pair head (outputs `{'embedding', 'pair_logits'}`).
  """
  if name not in LOSSES:
    raise ValueError(f"loss name must be one of {LOSSES}, got {name!r}")

  def loss_fn(outputs, batch):
    labels = batch["label"]
    if name == "binary":
      if not isinstance(outputs, dict):
        raise ValueError("loss 'binary' needs a model with a pair head (model_kwargs.pair_head='l1' or 'chi2')")
      loss, accuracy = binary_pair_loss(outputs["pair_logits"], labels, balanced)
      return loss, {"pair_accuracy": accuracy}
    if isinstance(outputs, dict):
      raise ValueError(f"loss {name!r} takes embeddings; the model has a pair head (set pair_head=None)")
    if name == "semihard":
      return semihard_triplet_loss(outputs, labels, margin=margin, squared=squared), {}
    if name == "batch_hard":
      return batch_hard_triplet_loss(outputs, labels, margin, squared), {}
    if name == "batch_all":
      loss, fraction = batch_all_triplet_loss(outputs, labels, margin, squared)
      return loss, {"fraction_positive": fraction}
    return random_triplet_loss(outputs, batch["triplets"], margin, squared), {}

  return loss_fn
