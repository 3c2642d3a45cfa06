"""Pixel optimisation at tiny size: costs fall, pixels stay valid, one compile per scale, exact resume."""

import jax
import numpy as np
import pytest
from skimage import color

from cnnjax.style.extractor import init_vgg_params, vgg_features
from cnnjax.style.transfer import compiled_functions, preserve_color, restore_color, stylize
from cnnjax.train.step import NonFiniteLossError

LAYERS = {"relu1_1": 0.5, "relu2_1": 0.5}
KW = dict(content_layer="relu2_1", style_layers=LAYERS, alpha=1.0, beta=1e3, log_every=1, progress=False)


@pytest.fixture(scope="module")
def setup():
  params = init_vgg_params(jax.random.key(0), "vgg16", widths=(4, 8, 8, 8, 8), taps=["relu2_1"])
  calls = []

  def extract(p, images, taps):
    calls.append(images.shape)  # runs at trace time only
    return vgg_features(p, images, taps, pool="avg")

  rng = np.random.default_rng(0)
  content = rng.uniform(size=(16, 16, 3)).astype(np.float32)
  style = np.clip(np.sin(np.arange(16)[:, None, None] * 1.3 + np.arange(3)) * 0.5 + 0.5, 0, 1)
  style = np.broadcast_to(style, (16, 16, 3)).astype(np.float32)
  return extract, params, content, style, calls


@pytest.mark.parametrize("optimizer,param", [("adam", "clip"), ("lbfgs", "sigmoid")])
def test_costs_fall_and_pixels_valid(setup, optimizer, param):
  extract, params, content, style, _ = setup
  r = stylize(extract, params, content, style, num_steps=8, optimizer=optimizer, learning_rate=0.05,
              parameterization=param, **KW)
  assert r.image.shape == (16, 16, 3)
  assert r.image.min() >= 0.0 and r.image.max() <= 1.0
  assert r.final["style"] < 0.5 * r.initial["style"]
  assert r.final["total"] < r.initial["total"]
  assert [h["step"] for h in r.history] == list(range(9))


def test_one_compile_per_scale_and_coarse_to_fine(setup):
  extract, params, content, style, calls = setup
  fns = compiled_functions(extract, KW["content_layer"], tuple(LAYERS.items()), KW["alpha"], KW["beta"], 0.0,
                           "adam", 0.05, "clip")
  for steps in (2, 5):
    r = stylize(extract, params, content, style, num_steps=steps, scales=(0.5, 1.0), learning_rate=0.05, **KW)
    assert r.history[steps]["step"] == steps and r.history[-1]["step"] == 2 * steps
    assert r.image.shape == (16, 16, 3)
    assert fns.step._cache_size() == 2  # one compiled step per image size (8x8, 16x16), never per step
  assert (8, 8, 3) in [c[1:] for c in calls]  # the coarse scale ran at half size


def test_resume_is_exact(setup):
  extract, params, content, style, _ = setup
  straight = stylize(extract, params, content, style, num_steps=6, learning_rate=0.05, **KW)
  saved = []
  stylize(extract, params, content, style, num_steps=3, learning_rate=0.05, checkpoint_every=3,
          on_checkpoint=saved.append, **KW)
  assert saved[-1].step == 3
  resumed = stylize(extract, params, content, style, num_steps=6, learning_rate=0.05, start=saved[-1], **KW)
  np.testing.assert_allclose(resumed.image, straight.image, atol=1e-6)


def test_color_preservation():
  rng = np.random.default_rng(1)
  content = rng.uniform(size=(12, 12, 3)).astype(np.float32)
  style = (rng.uniform(size=(12, 12, 3)) * [1.0, 0.3, 0.1]).astype(np.float32)
  c, s = preserve_color(content, style, "histogram")
  assert c is content
  for ch in range(3):  # same value distribution per channel (quantiles)
    np.testing.assert_allclose(np.sort(s[..., ch].ravel()), np.sort(content[..., ch].ravel()), atol=1e-6)
  c, s = preserve_color(content, style, "luminance")
  y_c = content @ np.array([0.299, 0.587, 0.114])
  np.testing.assert_allclose(c[..., 0], np.clip(y_c, 0, 1), atol=1e-5)
  assert abs(s[..., 0].mean() - y_c.mean()) < 1e-3 and np.allclose(s[..., 0], s[..., 2])
  out = restore_color(c, content, "luminance")  # the content's own luminance gives the content back
  np.testing.assert_allclose(color.rgb2yiq(out)[..., 1:], color.rgb2yiq(content)[..., 1:], atol=2e-2)
  with pytest.raises(ValueError, match="color='sepia'"):
    preserve_color(content, style, "sepia")


def test_bad_arguments(setup):
  extract, params, content, style, _ = setup
  with pytest.raises(ValueError, match="optimizer='sgd'"):
    stylize(extract, params, content, style, optimizer="sgd", **KW)
  with pytest.raises(ValueError, match="content.shape"):
    stylize(extract, params, content[..., 0], style, **KW)
  with pytest.raises(ValueError, match="scales"):
    stylize(extract, params, content, style, scales=(1.0, 0.5), **KW)


def test_a_non_finite_cost_stops_before_any_checkpoint_of_it(setup):
  extract, params, content, style, _ = setup
  saved = []
  stylize(extract, params, content, style, num_steps=2, learning_rate=0.05, checkpoint_every=2,
          on_checkpoint=saved.append, **{**KW, "log_every": 1})
  good = saved[-1]
  with pytest.raises(NonFiniteLossError, match="at step 3"):
    stylize(extract, params, content, style, num_steps=6, learning_rate=np.nan, checkpoint_every=1,
            on_checkpoint=saved.append, start=good, **{**KW, "log_every": 1})
  assert saved == [good], "nothing after the last good checkpoint is saved"
