"""mixup and CutMix: convex combinations, pasted box area = label weight, per-example draws, off = unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.data import augment, mixing, prepare

RNG = np.random.default_rng(0)
IMAGES = RNG.random((6, 7, 9, 2)).astype(np.float32)
LABELS = np.array([0, 1, 2, 3, 1, 0], np.int32)
BATCH = {"image": jnp.asarray(IMAGES), "label": jnp.asarray(LABELS)}
NUM_CLASSES = 4
CUTMIX = jax.jit(mixing.make_mix_fn(NUM_CLASSES, cutmix_alpha=1.0))  # compiled once for every seed


def onehot(labels):
  return np.eye(NUM_CLASSES)[labels]


def test_mixup_is_the_convex_combination_of_images_and_labels():
  out = jax.device_get(jax.jit(mixing.make_mix_fn(NUM_CLASSES, mixup_alpha=0.4))(jax.random.PRNGKey(0), BATCH))
  targets = np.asarray(out["targets"])
  partner = IMAGES[::-1]
  weights = []
  for i in range(6):
    # Solve image = w * own + (1 - w) * partner for w on the first pixel, then check every pixel.
    w = (out["image"][i, 0, 0, 0] - partner[i, 0, 0, 0]) / (IMAGES[i, 0, 0, 0] - partner[i, 0, 0, 0])
    np.testing.assert_allclose(out["image"][i], w * IMAGES[i] + (1 - w) * partner[i], atol=1e-5)
    np.testing.assert_allclose(targets[i], w * onehot(LABELS[i]) + (1 - w) * onehot(LABELS[::-1][i]), atol=1e-5)
    weights.append(float(w))
  assert len(set(np.round(weights, 4))) == 6, "each example draws its own weight"
  np.testing.assert_allclose(targets.sum(1), 1.0, rtol=1e-6)
  np.testing.assert_array_equal(out["label"], LABELS)


@pytest.mark.parametrize("seed", range(3))
def test_cutmix_box_area_is_the_label_weight(seed):
  out = jax.device_get(CUTMIX(jax.random.PRNGKey(seed), BATCH))
  partner_labels = LABELS[::-1]
  for i in range(6):
    from_partner = np.all(np.asarray(out["image"][i]) == IMAGES[::-1][i], axis=-1)
    own = np.all(np.asarray(out["image"][i]) == IMAGES[i], axis=-1)
    assert np.all(from_partner | own)
    if LABELS[i] == partner_labels[i]:
      continue
    rows, cols = np.nonzero(from_partner)
    if len(rows):  # the pasted pixels form one axis-aligned box
      box = np.zeros_like(from_partner)
      box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
      np.testing.assert_array_equal(from_partner, box)
    kept = 1.0 - from_partner.mean()  # exact: the box is clipped at the borders before weighing
    np.testing.assert_allclose(out["targets"][i, LABELS[i]], kept, rtol=1e-6)
    np.testing.assert_allclose(out["targets"][i, partner_labels[i]], 1.0 - kept, rtol=1e-6, atol=1e-7)


def test_cutmix_box_is_clipped_at_the_border():
  # lam = 0 asks for a box the size of the image; centred off the middle it is cut off, and weighs what remains.
  for seed in range(5):
    top, bottom, left, right = (int(v) for v in mixing.cutmix_box(jax.random.PRNGKey(seed), 7, 9, jnp.float32(0.0)))
    assert 0 <= top <= bottom <= 7 and 0 <= left <= right <= 9
    _, weight = mixing.cutmix(jax.random.PRNGKey(seed), IMAGES[0], IMAGES[1], jnp.float32(0.0))
    np.testing.assert_allclose(weight, 1 - (bottom - top) * (right - left) / 63, rtol=1e-6)


def test_both_on_switches_per_example():
  mix = jax.jit(mixing.make_mix_fn(NUM_CLASSES, mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=0.5))
  images = RNG.random((16, 5, 5, 1)).astype(np.float32)
  batch = {"image": jnp.asarray(images), "label": jnp.zeros(16, jnp.int32)}
  out = np.asarray(mix(jax.random.PRNGKey(1), batch)["image"])
  # CutMix copies pixels (each equals its own or the partner's), mixup blends every pixel.
  copied = np.all((out == images) | (out == images[::-1]), axis=(1, 2, 3))
  assert 0 < copied.sum() < 16


def test_off_by_default_gives_the_same_batch():
  assert mixing.make_mix_fn(NUM_CLASSES) is None
  # The classification augment fn without mixing or RandAugment: the spec's ops and normalisation, as before.
  spec, mean, std = ["flip_lr"], np.array([0.5, 0.4]), np.array([0.2, 0.3])
  key = jax.random.PRNGKey(0)
  out = prepare.make_augment_fn(mean, std, spec)(key, BATCH)
  assert set(out) == {"image", "label"}
  np.testing.assert_array_equal(out["image"], augment.normalize(augment.build(spec)(key, BATCH["image"]), mean, std))
  with pytest.raises(ValueError, match="mixup_alpha=-1"):
    mixing.make_mix_fn(NUM_CLASSES, mixup_alpha=-1)
  with pytest.raises(ValueError, match="switch_prob=2"):
    mixing.make_mix_fn(NUM_CLASSES, mixup_alpha=1, switch_prob=2)
