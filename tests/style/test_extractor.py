"""VGG feature extractor: agrees with the zoo VGG, preprocessing formulas, weight resolution, images."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from cnnjax import models
from cnnjax.models.intermediates import intermediates
from cnnjax.style.extractor import init_vgg_params, layer_names, preprocess, resolve_weights, vgg_features
from cnnjax.style.images import load_image, save_image


def test_matches_zoo_vgg_taps():
  # The extractor rebuilds the network from the parameter tree; it must be the registered VGG-16.
  model = models.create("vgg16", num_classes=10, pool="avg")
  x = jax.random.uniform(jax.random.key(0), (1, 32, 32, 3))
  taps = ["conv1_1", "relu2_2", "pool2", "fc7"]
  xin = preprocess(x, "torch")
  variables = jax.jit(model.init)(jax.random.key(1), xin)
  want = jax.jit(lambda v, i: intermediates(model, v, i, taps))(variables, xin)
  got = jax.jit(lambda p, i: vgg_features(p, i, taps, pool="avg"))(variables["params"], x)
  for t in taps:
    np.testing.assert_allclose(got[t], want[t], rtol=1e-4, atol=1e-4)


def test_init_layers_and_preprocessing():
  p = init_vgg_params(jax.random.key(0), "vgg19", taps=["pool3"])
  assert list(p) == ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4"]
  assert p["conv3_1"]["kernel"].shape == (3, 3, 128, 256)
  np.testing.assert_allclose(np.std(p["conv3_1"]["kernel"]), np.sqrt(2 / (9 * 128)), rtol=0.02)
  assert layer_names(p)[-1] == "pool3"
  x = np.random.default_rng(0).uniform(size=(1, 2, 2, 3)).astype(np.float32)
  np.testing.assert_allclose(preprocess(x, "torch"), (x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225],
                             rtol=1e-5)
  bgr = np.stack([x[..., 2] * 255 - 103.939, x[..., 1] * 255 - 116.779, x[..., 0] * 255 - 123.68], -1)
  np.testing.assert_allclose(preprocess(x, "caffe"), bgr, rtol=1e-5, atol=1e-4)
  with pytest.raises(ValueError, match="preprocessing='bgr'"):
    preprocess(x, "bgr")
  with pytest.raises(ValueError, match="relu5_1"):
    vgg_features(p, jnp.zeros((1, 8, 8, 3)), ["relu5_1"])
  with pytest.raises(ValueError, match="images.shape"):
    vgg_features(p, jnp.zeros((8, 8, 3)), ["relu1_1"])


def test_resolve_weights_random_and_file(tmp_path):
  params, prep, source = resolve_weights("", "", arch="vgg16", taps=["relu2_1"])
  assert (prep, source) == ("torch", "random") and list(params) == ["conv1_1", "conv1_2", "conv2_1"]
  with pytest.raises(ValueError, match="no such file"):
    resolve_weights(str(tmp_path / "nope.pth"), "", arch="vgg16", taps=["relu2_1"])


def test_load_image(tmp_path):
  img = load_image("astronaut", 32)
  assert img.shape == (32, 32, 3) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
  assert load_image("brick", (8, 12)).shape == (8, 12, 3)  # grayscale texture -> RGB
  path = str(tmp_path / "x.png")
  rgb = np.random.default_rng(0).uniform(size=(5, 7, 3)).astype(np.float32)
  save_image(rgb, path)
  np.testing.assert_allclose(load_image(path), rgb, atol=1 / 255)
  Image.fromarray(np.zeros((4, 4, 4), np.uint8)).save(tmp_path / "rgba.png")
  assert load_image(str(tmp_path / "rgba.png")).shape == (4, 4, 3)
  with pytest.raises(ValueError, match="missing.png"):
    load_image(str(tmp_path / "missing.png"))
  (tmp_path / "notes.jpg").write_text("not an image")
  with pytest.raises(ValueError, match="notes.jpg.*not a readable image"):
    load_image(str(tmp_path / "notes.jpg"))
