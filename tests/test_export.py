"""`cnnjax.export`: the file runs in a fresh process that imports only JAX and NumPy, for any batch size."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import models
from cnnjax.data.augment import normalize
from cnnjax.export import export_classifier, load_exported

MEAN, STD = np.array([0.4, 0.5, 0.6], np.float32), np.array([0.2, 0.25, 0.3], np.float32)
# Reads the file with JAX alone and fails if anything of cnnjax got imported.
CHILD = textwrap.dedent("""
    import sys
    import jax, numpy as np
    exported = jax.export.deserialize(bytearray(open(sys.argv[1], "rb").read()))
    inputs = np.load(sys.argv[2])
    np.savez(sys.argv[3], **{k: np.asarray(exported.call(v)) for k, v in inputs.items()})
    assert not any(m.split(".")[0] == "cnnjax" for m in sys.modules), "cnnjax was imported"
""")


@pytest.mark.parametrize("name", ["resnet20"])  # its 16-64 channel convs use cnnjax's CPU kernels in training
def test_exported_classifier_matches_the_model_in_a_fresh_process(tmp_path, name):
  model = models.create(name, num_classes=5)
  variables = jax.jit(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)), train=False))()
  path = export_classifier(model, variables, (16, 16, 3), str(tmp_path / "model.jax"), mean=MEAN, std=STD)
  rng = np.random.default_rng(0)
  inputs = {f"batch{n}": rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8) for n in (1, 3)}
  np.savez(tmp_path / "in.npz", **inputs)
  subprocess.run([sys.executable, "-c", CHILD, path, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                 check=True, timeout=300)
  outputs = np.load(tmp_path / "out.npz")
  reference = jax.jit(lambda images: model.apply(variables, normalize(images, MEAN, STD), train=False))
  for key, images in inputs.items():
    expected = reference(images)
    assert outputs[key].shape == (len(images), 5)
    np.testing.assert_allclose(outputs[key], expected, rtol=1e-4, atol=1e-4)
  assert load_exported(path).in_avals[0].dtype == np.uint8


def test_bad_arguments():
  model = models.create("lenet5", num_classes=3)
  with pytest.raises(ValueError, match=r"image_shape=\(32, 32\)"):
    export_classifier(model, {}, (32, 32), "unused")
  with pytest.raises(ValueError, match="give both"):
    export_classifier(model, {}, (32, 32, 1), "unused", mean=MEAN)
