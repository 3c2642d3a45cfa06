"""Weight converters: reduced-width reference networks in torch / Keras layout, compared layer by layer."""

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from cnnjax.style.extractor import vgg_features
from cnnjax.train.checkpoint import check_shapes
from cnnjax.transfer import load_vgg

WIDTHS = (4, 8, 8, 16, 16)
SIZE = 64  # five 2x2 pools leave a 2x2 map, so fc6's flatten order matters
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def rel_diff(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)


def torch_vgg(stages, widths, classes=10):
  """torchvision's VGG layout: `features` (conv, relu, ..., maxpool) and `classifier` (0/3/6)."""
  torch.manual_seed(0)
  layers, c_in, names = [], 3, []
  for b, (n, c) in enumerate(zip(stages, widths), 1):
    for i in range(1, n + 1):
      layers += [torch.nn.Conv2d(c_in, c, 3, padding=1), torch.nn.ReLU()]
      names += [f"conv{b}_{i}", f"relu{b}_{i}"]
      c_in = c
    layers.append(torch.nn.MaxPool2d(2, 2))
    names.append(f"pool{b}")
  hw = (SIZE // 32) ** 2
  model = torch.nn.Module()
  model.features = torch.nn.Sequential(*layers)
  model.classifier = torch.nn.Sequential(
      torch.nn.Linear(c_in * hw, 32), torch.nn.ReLU(), torch.nn.Dropout(),
      torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Dropout(), torch.nn.Linear(32, classes))
  for p in model.parameters():  # non-zero biases so a bias mix-up shows
    torch.nn.init.normal_(p, std=0.3)
  return model.eval(), names


def torch_taps(model, names, x):
  out, h = {}, x
  with torch.no_grad():
    for name, layer in zip(names, model.features):
      h = layer(h)
      out[name] = h.permute(0, 2, 3, 1).numpy()
    h = torch.flatten(h, 1)  # torch's NCHW flatten order
    for name, j in (("fc6", 0), ("fc7", 3), ("fc8", 6)):
      if j:
        h = torch.relu(h)
      h = model.classifier[j](h)
      out[name] = h.numpy()
  return out


@pytest.fixture(scope="module")
def images():
  return np.random.default_rng(0).uniform(size=(2, SIZE, SIZE, 3)).astype(np.float32)


@pytest.mark.parametrize("stages,suffix", [((2, 2, 3, 3, 3), ".pth"), ((2, 2, 4, 4, 4), ".safetensors")])
def test_torchvision_vgg_layer_by_layer(tmp_path, images, stages, suffix):
  model, names = torch_vgg(stages, WIDTHS)
  path = str(tmp_path / f"vgg{suffix}")
  sd = {k: v.contiguous() for k, v in model.state_dict().items()}
  torch.save(sd, path) if suffix == ".pth" else save_file(sd, path)
  weights = load_vgg(path)
  assert weights.preprocessing == "torch" and weights.source == f"torchvision:{path}"
  x = torch.from_numpy(((images - MEAN) / STD).astype(np.float32)).permute(0, 3, 1, 2)
  want = torch_taps(model, names, x)
  got = jax.jit(lambda p, x: vgg_features(p, x, list(want), pool="max"))(weights.params, images)
  assert set(got) == set(want)
  for name in want:
    assert got[name].shape == want[name].shape, name
    assert rel_diff(got[name], want[name]) <= 1e-4, name


def write_keras_h5(path, stages, widths, classes=10):
  """Keras 2 weight-file layout; returns the weights by Keras layer name."""
  rng = np.random.default_rng(1)
  weights, layer_names, c_in = {}, ["input_1"], 3
  for b, (n, c) in enumerate(zip(stages, widths), 1):
    for i in range(1, n + 1):
      weights[f"block{b}_conv{i}"] = (rng.normal(0, 0.3, (3, 3, c_in, c)), rng.normal(0, 0.3, c))
      layer_names.append(f"block{b}_conv{i}")
      c_in = c
    layer_names.append(f"block{b}_pool")
  layer_names.append("flatten")
  for name, (i, o) in (("fc1", (c_in * (SIZE // 32) ** 2, 32)), ("fc2", (32, 32)), ("predictions", (32, classes))):
    weights[name] = (rng.normal(0, 0.3, (i, o)), rng.normal(0, 0.3, o))
    layer_names.append(name)
  with h5py.File(path, "w") as f:
    g = f.create_group("model_weights")
    g.attrs["layer_names"] = np.array([n.encode() for n in layer_names])
    g.attrs["backend"] = b"tensorflow"
    for name in layer_names:
      layer = g.create_group(name)
      wn = [f"{name}/kernel:0", f"{name}/bias:0"] if name in weights else []
      layer.attrs["weight_names"] = np.array([w.encode() for w in wn])
      for w, v in zip(wn, weights.get(name, ())):
        layer.create_dataset(w, data=v.astype(np.float32))
  return weights


def test_keras_vgg_layer_by_layer(tmp_path, images):
  path = str(tmp_path / "vgg19.h5")
  kw = write_keras_h5(path, (2, 2, 4, 4, 4), WIDTHS)
  weights = load_vgg(path)
  assert weights.preprocessing == "caffe" and weights.source == f"keras:{path}"
  # Keras/Caffe convention: BGR, 0..255, BGR mean subtracted; NHWC flatten.
  h = torch.from_numpy(images[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68], np.float32))
  h = h.float().permute(0, 3, 1, 2)
  want = {}
  for b, n in enumerate((2, 2, 4, 4, 4), 1):
    for i in range(1, n + 1):
      k, bias = kw[f"block{b}_conv{i}"]
      h = torch.relu(torch.nn.functional.conv2d(h, torch.from_numpy(k.transpose(3, 2, 0, 1)).float(),
                                                torch.from_numpy(bias).float(), padding=1))
      want[f"relu{b}_{i}"] = h.permute(0, 2, 3, 1).numpy()
    h = torch.nn.functional.max_pool2d(h, 2)
    want[f"pool{b}"] = h.permute(0, 2, 3, 1).numpy()
  h = torch.from_numpy(want["pool5"].reshape(len(images), -1))
  for j, (name, ours) in enumerate((("fc1", "fc6"), ("fc2", "fc7"), ("predictions", "fc8"))):
    h = torch.relu(h) if j else h
    h = h @ torch.from_numpy(kw[name][0]).float() + torch.from_numpy(kw[name][1]).float()
    want[ours] = h.numpy()
  got = jax.jit(lambda p, x: vgg_features(p, x, list(want), pool="max", preprocessing="caffe"))(
      weights.params, images)
  for name in want:
    assert rel_diff(got[name], want[name]) <= 1e-4, name


def test_shape_mismatch_names_path_and_shapes(tmp_path):
  model, _ = torch_vgg((2, 2, 3, 3, 3), WIDTHS)
  path = str(tmp_path / "vgg.safetensors")
  save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
  params = load_vgg(path).params
  expected = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.float32), params)
  check_shapes(params, expected, source="vgg.safetensors")
  expected["conv2_1"]["kernel"] = jax.ShapeDtypeStruct((3, 3, 4, 9), jnp.float32)
  with pytest.raises(ValueError, match=r"vgg.safetensors: conv2_1/kernel has shape \(3, 3, 4, 8\) but the model expects \(3, 3, 4, 9\)"):
    load_vgg(path, expected=expected)
  del expected["fc8"]
  expected["conv2_1"]["kernel"] = jax.ShapeDtypeStruct((3, 3, 4, 8), jnp.float32)
  with pytest.raises(ValueError, match="vgg.safetensors: fc8/bias is not in the model"):
    check_shapes(params, expected, source="vgg.safetensors")


def test_pth_without_torch_is_a_clear_error(tmp_path, monkeypatch):
  path = tmp_path / "vgg.pth"
  path.write_bytes(b"")
  monkeypatch.setitem(__import__("sys").modules, "torch", None)  # `import torch` now fails
  with pytest.raises(ImportError, match="needs torch.*safetensors"):
    load_vgg(str(path))


def test_bad_files(tmp_path):
  with pytest.raises(ValueError, match="no such file"):
    load_vgg(str(tmp_path / "missing.pth"))
  bad = tmp_path / "junk.safetensors"
  bad.write_bytes(b"not a tensor file")
  with pytest.raises(ValueError, match="junk.safetensors"):
    load_vgg(str(bad))
  with pytest.raises(ValueError, match="expected a .pth"):
    load_vgg(str(bad).replace(".safetensors", ".txt"))
  pickled = tmp_path / "obj.pth"
  torch.save({"x": object()}, pickled)  # arbitrary objects must not be unpickled
  with pytest.raises(ValueError, match="obj.pth"):
    load_vgg(str(pickled))


class TorchBlock(torch.nn.Module):
  """torchvision's BasicBlock / Bottleneck (v1.5: the 3x3 strides), same parameter names."""

  def __init__(self, c_in, width, stride, bottleneck):
    super().__init__()
    out = width * (4 if bottleneck else 1)
    ks = (1, 3, 1) if bottleneck else (3, 3)
    widths = (width, width, out) if bottleneck else (width, out)
    c = c_in
    for j, (k, w) in enumerate(zip(ks, widths), 1):
      s = stride if j == (2 if bottleneck else 1) else 1
      setattr(self, f"conv{j}", torch.nn.Conv2d(c, w, k, s, k // 2, bias=False))
      setattr(self, f"bn{j}", torch.nn.BatchNorm2d(w))
      c = w
    self.n = len(ks)
    self.downsample = None
    if stride != 1 or c_in != out:
      self.downsample = torch.nn.Sequential(torch.nn.Conv2d(c_in, out, 1, stride, bias=False),
                                            torch.nn.BatchNorm2d(out))

  def forward(self, x):
    y = x
    for j in range(1, self.n + 1):
      y = getattr(self, f"bn{j}")(getattr(self, f"conv{j}")(y))
      y = torch.relu(y) if j < self.n else y
    return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


def torch_resnet(bottleneck, widths=(4, 8), stages=(2, 1), classes=5):
  torch.manual_seed(0)
  m = torch.nn.Module()
  m.conv1, m.bn1 = torch.nn.Conv2d(3, widths[0], 7, 2, 3, bias=False), torch.nn.BatchNorm2d(widths[0])
  c = widths[0]
  for s, (n, w) in enumerate(zip(stages, widths), 1):
    blocks = []
    for b in range(n):
      blocks.append(TorchBlock(c, w, 2 if s > 1 and b == 0 else 1, bottleneck))
      c = w * (4 if bottleneck else 1)
    setattr(m, f"layer{s}", torch.nn.Sequential(*blocks))
  m.fc = torch.nn.Linear(c, classes)
  for name, p in m.named_parameters():
    torch.nn.init.normal_(p, mean=1.0 if name.endswith("bn1.weight") else 0.0, std=0.3)
  for mod in m.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
      mod.running_mean.normal_(0, 0.2)
      mod.running_var.uniform_(0.5, 2.0)
  return m.eval()


def torch_resnet_forward(m, x, stages):
  out = {}
  h = torch.nn.functional.max_pool2d(torch.relu(m.bn1(m.conv1(x))), 3, 2, 1)
  for s, n in enumerate(stages, 1):
    for b in range(n):
      h = getattr(m, f"layer{s}")[b](h)
      out[f"layer{s}_{b}"] = h.permute(0, 2, 3, 1).numpy()
  out["fc"] = m.fc(h.mean(dim=(2, 3))).numpy()
  return out


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_torchvision_resnet_block_by_block(tmp_path, images, block):
  from cnnjax.models.resnet import ResNet
  from cnnjax.transfer import convert_torchvision_resnet, load_state_dict
  stages = (2, 1)
  m = torch_resnet(block == "bottleneck", stages=stages)
  path = str(tmp_path / "resnet.safetensors")
  save_file({k: v.contiguous() for k, v in m.state_dict().items()}, path)
  variables = convert_torchvision_resnet(load_state_dict(path))
  model = ResNet(stage_sizes=stages, block=block, widths=(4, 8), num_classes=5)
  x = images[:, :32, :32]
  check_shapes(variables, jax.eval_shape(model.init, jax.random.key(0), x), source="converted resnet")
  with torch.no_grad():
    want = torch_resnet_forward(m, torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), stages)
  logits, state = jax.jit(lambda v, i: model.apply(v, i, capture_intermediates=True, mutable=["intermediates"]))(
      variables, x)
  got = {k: v["__call__"][0] for k, v in state["intermediates"].items() if k.startswith("layer")}
  got["fc"] = logits
  for name in want:
    assert rel_diff(got[name], want[name]) <= 1e-4, name
