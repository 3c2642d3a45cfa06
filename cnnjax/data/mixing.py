"""mixup and CutMix on device: each example mixed with its partner in the reversed batch, labels mixed alike.

mixup (Zhang et al. 2018) blends two images, `lam * a + (1 - lam) * b`;
CutMix (Yun et al. 2019) pastes a box of the partner into the image and weighs
the labels by the area each keeps. `lam ~ Beta(alpha, alpha)` per example,
as is the choice between the two when both are on; the partner of example i
is example N - 1 - i (timm's "elem" mode).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
Batch = dict[str, Array]


def mixup(image: Array, partner: Array, lam: Array) -> tuple[Array, Array]:
  """`(lam * image + (1 - lam) * partner, lam)`: the blend and the weight of `image`'s label."""
  return lam * image + (1.0 - lam) * partner, lam


def cutmix_box(key: Array, height: int, width: int, lam: Array) -> tuple[Array, Array, Array, Array]:
  """(top, bottom, left, right) of a box of about `(1 - lam)` of the image, clipped at the borders.

  The box has sides `int(height * sqrt(1 - lam))` and `int(width * sqrt(1 - lam))`
  around a uniformly drawn centre; where it crosses a border it is cut off, so
  its area may be smaller (the label weight follows the area actually pasted).
  """
  ky, kx = jax.random.split(key)
  ratio = jnp.sqrt(1.0 - lam)
  cut_h, cut_w = (height * ratio).astype(jnp.int32), (width * ratio).astype(jnp.int32)
  cy, cx = jax.random.randint(ky, (), 0, height), jax.random.randint(kx, (), 0, width)
  return (jnp.clip(cy - cut_h // 2, 0, height), jnp.clip(cy + cut_h // 2, 0, height),
          jnp.clip(cx - cut_w // 2, 0, width), jnp.clip(cx + cut_w // 2, 0, width))


def cutmix(key: Array, image: Array, partner: Array, lam: Array) -> tuple[Array, Array]:
  """`image` (H, W, C) with a box of `partner` pasted in, and the share of `image`'s pixels left."""
  h, w = image.shape[:2]
  top, bottom, left, right = cutmix_box(key, h, w, lam)
  rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
  return jnp.where(inside[..., None], partner, image), 1.0 - jnp.mean(inside.astype(jnp.float32))


def make_mix_fn(
    num_classes: int, *, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, switch_prob: float = 0.5
) -> Callable[[Array, Batch], Batch] | None:
  """`(key, batch) -> batch` that mixes `batch['image']` (N, H, W, C) and adds soft labels `batch['targets']`.

  Args:
    num_classes: length of the one-hot labels mixed into `targets` (N, num_classes).
    mixup_alpha, cutmix_alpha: Beta parameters; 0 turns that method off.
    switch_prob: with both on, the probability that an example gets CutMix rather than mixup.

  Returns:
    None when both alphas are 0 (nothing to do). `batch['label']` stays the
    integer label of each example's own image (the training accuracy reads it).
  """
  for name, alpha in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
    if not alpha >= 0:
      raise ValueError(f"{name}={alpha!r}: expected a number >= 0 (0 turns it off)")
  if not 0.0 <= switch_prob <= 1.0:
    raise ValueError(f"switch_prob={switch_prob!r}: expected a probability in [0, 1]")
  if not (mixup_alpha or cutmix_alpha):
    return None
  cutmix_prob = switch_prob if mixup_alpha and cutmix_alpha else float(bool(cutmix_alpha))

  def one(key: Array, image: Array, partner: Array) -> tuple[Array, Array]:
    k_choice, k_mixup, k_cutmix, k_box = jax.random.split(key, 4)
    use_cutmix = jax.random.bernoulli(k_choice, cutmix_prob)
    # An alpha of 0 is never drawn (its branch is not taken); 1.0 keeps the Beta sampler defined.
    lam_mixup = jax.random.beta(k_mixup, mixup_alpha or 1.0, mixup_alpha or 1.0)
    lam_cutmix = jax.random.beta(k_cutmix, cutmix_alpha or 1.0, cutmix_alpha or 1.0)
    mixed, weight = mixup(image, partner, lam_mixup)
    pasted, pasted_weight = cutmix(k_box, image, partner, lam_cutmix)
    return jnp.where(use_cutmix, pasted, mixed), jnp.where(use_cutmix, pasted_weight, weight)

  def mix(key: Array, batch: Batch) -> Batch:
    images, labels = batch["image"], batch["label"]
    if images.ndim != 4:
      raise ValueError(f"mixup/CutMix: images must be a (N, H, W, C) batch, got shape {images.shape}")
    keys = jax.random.split(key, images.shape[0])
    mixed, weights = jax.vmap(one)(keys, images, images[::-1])
    onehot = jax.nn.one_hot(labels, num_classes)
    targets = weights[:, None] * onehot + (1.0 - weights[:, None]) * onehot[::-1]
    return {**batch, "image": mixed.astype(images.dtype), "targets": targets}

  return mix
