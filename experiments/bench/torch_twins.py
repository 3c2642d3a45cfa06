"""PyTorch twins of the benchmarked cnnjax workloads: same architectures, same weights, same step.

Module and attribute names follow the Flax parameter paths (`layer1_0.conv1`),
so `load_flax_variables` copies a cnnjax model's variables into its twin and
both compute the same function (the twins' tests check it). Only the benchmark
and its tests import this module; cnnjax itself never imports torch.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)


class LeNet5(nn.Module):
  """cnnjax's `lenet5` (ReLU, max pooling); flattens in NHWC order as the Flax model does."""

  def __init__(self, image_shape, num_classes: int):
    super().__init__()
    (h, w, c), side = image_shape, lambda n: ((n - 4) // 2 - 4) // 2
    self.conv1, self.conv2 = nn.Conv2d(c, 6, 5), nn.Conv2d(6, 16, 5)
    self.fc1, self.fc2, self.fc3 = nn.Linear(side(h) * side(w) * 16, 120), nn.Linear(120, 84), nn.Linear(84, num_classes)

  def forward(self, x):
    for conv in (self.conv1, self.conv2):
      x = F.max_pool2d(F.relu(conv(x)), 2)
    x = x.permute(0, 2, 3, 1).flatten(1)
    return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def _bn(c: int) -> nn.BatchNorm2d:
  return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)


class Block(nn.Module):
  """cnnjax's BasicBlock / Bottleneck with 'projection' or 'pad' (option A) shortcuts."""

  def __init__(self, cin: int, features: int, stride: int, bottleneck: bool, shortcut: str):
    super().__init__()
    self.stride, self.shortcut = stride, shortcut
    cout = features * 4 if bottleneck else features
    if bottleneck:
      specs = [(cin, features, 1, 1), (features, features, 3, stride), (features, cout, 1, 1)]
    else:
      specs = [(cin, features, 3, stride), (features, features, 3, 1)]
    self.n = len(specs)
    for i, (a, b, k, s) in enumerate(specs, start=1):
      self.add_module(f"conv{i}", nn.Conv2d(a, b, k, s, (k - 1) // 2, bias=False))
      self.add_module(f"bn{i}", _bn(b))
    self.reshape = cin != cout or stride != 1
    self.pad = cout - cin
    if self.reshape and shortcut == "projection":
      self.downsample_conv, self.downsample_bn = nn.Conv2d(cin, cout, 1, stride, bias=False), _bn(cout)

  def forward(self, x):
    y = x
    for i in range(1, self.n + 1):
      y = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(y))
      if i < self.n:
        y = F.relu(y)
    if self.reshape:
      if self.shortcut == "projection":
        x = self.downsample_bn(self.downsample_conv(x))
      else:
        x = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.pad))
    return F.relu(y + x)


class ResNet(nn.Module):
  """cnnjax's `ResNet`: ImageNet stem (7x7/2 + 3x3/2 max pool) or CIFAR stem, stages, mean pool, fc."""

  def __init__(self, in_channels: int, num_classes: int, stage_sizes, widths, *, bottleneck: bool,
               cifar_stem: bool, shortcut: str):
    super().__init__()
    k, s, p = (3, 1, 1) if cifar_stem else (7, 2, 3)
    self.cifar_stem = cifar_stem
    self.conv1, self.bn1 = nn.Conv2d(in_channels, widths[0], k, s, p, bias=False), _bn(widths[0])
    blocks, cin = [], widths[0]
    for stage, (n, width) in enumerate(zip(stage_sizes, widths)):
      for b in range(n):
        block = Block(cin, width, 2 if stage > 0 and b == 0 else 1, bottleneck, shortcut)
        self.add_module(f"layer{stage + 1}_{b}", block)
        blocks.append(block)
        cin = width * 4 if bottleneck else width
    self.blocks = blocks
    self.fc = nn.Linear(cin, num_classes)

  def forward(self, x):
    x = F.relu(self.bn1(self.conv1(x)))
    if not self.cifar_stem:
      x = F.max_pool2d(x, 3, 2, 1)
    for block in self.blocks:
      x = block(x)
    return self.fc(x.mean((2, 3)))


_IMAGENET = {18: (False, (2, 2, 2, 2)), 34: (False, (3, 4, 6, 3)), 50: (True, (3, 4, 6, 3)),
             101: (True, (3, 4, 23, 3)), 152: (True, (3, 8, 36, 3))}


def create(name: str, *, image_shape, num_classes: int) -> nn.Module:
  """The twin of `cnnjax.models.create(name)` for 'lenet5', 'resnet{18..152}', 'resnet{20,32,..}'.

  Args:
    image_shape: the input's (H, W, C).
  """
  in_channels = image_shape[-1]
  if name == "lenet5":
    return LeNet5(image_shape, num_classes)
  depth = int(name[len("resnet"):]) if name.startswith("resnet") and name[6:].isdigit() else None
  if depth in _IMAGENET:
    bottleneck, sizes = _IMAGENET[depth]
    return ResNet(in_channels, num_classes, sizes, (64, 128, 256, 512), bottleneck=bottleneck,
                  cifar_stem=False, shortcut="projection")
  if depth is not None and depth >= 8 and (depth - 2) % 6 == 0:
    n = (depth - 2) // 6
    return ResNet(in_channels, num_classes, (n, n, n), (16, 32, 64), bottleneck=False, cifar_stem=True,
                  shortcut="pad")
  raise ValueError(f"model {name!r} has no PyTorch twin; expected 'lenet5', 'resnet18..152' or a CIFAR 'resnetN'")


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, Mapping):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[prefix + k] = v
  return out


def _to_torch(name: str, value: np.ndarray) -> tuple[str, torch.Tensor]:
  value = np.asarray(value, np.float32)
  module, leaf = name.rsplit(".", 1)
  if leaf == "kernel":
    value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T  # HWIO -> OIHW, (in, out) -> (out, in)
  torch_leaf = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean",
                "var": "running_var"}[leaf]
  return f"{module}.{torch_leaf}", torch.from_numpy(np.array(value, copy=True))


def load_flax_variables(twin: nn.Module, params: Mapping, batch_stats: Mapping | None = None) -> nn.Module:
  """Copies Flax `params` (and BatchNorm `batch_stats`) into `twin`; every tensor must be matched."""
  tensors = dict(_to_torch(k, v) for k, v in _flatten(params).items())
  tensors.update(_to_torch(k, v) for k, v in _flatten(batch_stats or {}).items())
  own = twin.state_dict()
  wanted = {k for k in own if not k.endswith("num_batches_tracked")}
  if set(tensors) != wanted:
    raise ValueError(f"parameter names differ: only in Flax {sorted(set(tensors) - wanted)}, "
                     f"only in torch {sorted(wanted - set(tensors))}")
  for k, v in tensors.items():
    if tuple(own[k].shape) != tuple(v.shape):
      raise ValueError(f"{k}: Flax shape {tuple(v.shape)} vs torch {tuple(own[k].shape)}")
  twin.load_state_dict(tensors, strict=False)
  return twin


class ClassifierSteps:
  """The twin's SGD-momentum cross-entropy train step and no-grad inference on one batch."""

  def __init__(self, twin: nn.Module, images_nhwc: np.ndarray, labels: np.ndarray, *, learning_rate: float,
               momentum: float, device: str = "cpu", dtype: str = "float32", channels_last: bool = False):
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    self.device = torch.device(device)
    self.model = twin.to(self.device, memory_format=memory_format)
    self.images = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2))).to(
        self.device, memory_format=memory_format)
    self.labels = torch.from_numpy(np.asarray(labels, np.int64)).to(self.device)
    self.opt = torch.optim.SGD(self.model.parameters(), lr=learning_rate, momentum=momentum)
    self.autocast = dtype == "bfloat16"
    self.loss = None

  def _sync(self):
    if self.device.type == "cuda":
      torch.cuda.synchronize(self.device)

  def _forward(self):
    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
      return self.model(self.images)

  def train_step(self) -> None:
    self.model.train()
    self.opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(self._forward().float(), self.labels)
    loss.backward()
    self.opt.step()
    self.loss = loss.detach()
    self._sync()

  def infer_step(self) -> None:
    self.model.eval()
    with torch.no_grad():
      self._forward()
    self._sync()


def vgg_features(params: Mapping, image_hwc: torch.Tensor, taps) -> dict[str, torch.Tensor]:
  """cnnjax.style.extractor.vgg_features (torch preprocessing, average pooling) for one `[H, W, 3]` image."""
  mean, std = (torch.tensor(v, device=image_hwc.device) for v in (TORCH_MEAN, TORCH_STD))
  x = ((image_hwc - mean) / std).permute(2, 0, 1)[None]
  names = sorted(params, key=lambda k: tuple(int(i) for i in k[4:].split("_")))
  deepest = max(int(t[4:].split("_")[0]) * 100 + int(t[4:].split("_")[1]) for t in taps)
  out, prev_block = {}, 1
  for name in names:
    b, i = (int(v) for v in name[4:].split("_"))
    if b * 100 + i > deepest:
      break
    if b != prev_block:
      x = F.avg_pool2d(x, 2)
      prev_block = b
    x = F.relu(F.conv2d(x, params[name]["weight"], params[name]["bias"], padding=1))
    if f"relu{b}_{i}" in taps:
      out[f"relu{b}_{i}"] = x[0]
  return out


def _gram(a: torch.Tensor) -> torch.Tensor:
  flat = a.reshape(a.shape[0], -1)
  return flat @ flat.T


class StyleSteps:
  """The twin of cnnjax's Adam style step: same VGG weights, costs, Adam and [0, 1] clipping.

  Only `relu{b}_{i}` taps (the style step's defaults) are supported.
  """

  def __init__(self, flax_params: Mapping, content: np.ndarray, style: np.ndarray, *, content_layer: str,
               style_layers: Mapping[str, float], alpha: float, beta: float, learning_rate: float,
               device: str = "cpu"):
    if not all(t.startswith("relu") for t in [content_layer, *style_layers]):
      raise ValueError(f"taps {[content_layer, *style_layers]}: the twin supports relu{{b}}_{{i}} taps only")
    dev = torch.device(device)
    self.device = dev
    self.params = {k: {"weight": torch.from_numpy(np.asarray(v["kernel"], np.float32).transpose(3, 2, 0, 1).copy()
                                                  ).to(dev),
                       "bias": torch.from_numpy(np.array(v["bias"], np.float32)).to(dev)}
                   for k, v in flax_params.items()}
    self.content_layer, self.style_layers = content_layer, dict(style_layers)
    self.alpha, self.beta = alpha, beta
    with torch.no_grad():
      c, s = (torch.from_numpy(np.asarray(a, np.float32)).to(dev) for a in (content, style))
      self.a_c = vgg_features(self.params, c, [content_layer])[content_layer]
      self.grams = {k: _gram(v) for k, v in vgg_features(self.params, s, list(style_layers)).items()}
    self.image = c.clone().requires_grad_(True)
    self.opt = torch.optim.Adam([self.image], lr=learning_rate)
    self.value = None

  def loss(self, image: torch.Tensor) -> torch.Tensor:
    acts = vgg_features(self.params, image, [self.content_layer, *self.style_layers])
    a_g = acts[self.content_layer]
    j_content = ((self.a_c - a_g) ** 2).sum() / (4.0 * a_g.numel())
    j_style = 0.0
    for layer, w in self.style_layers.items():
      a = acts[layer]
      c, hw = a.shape[0], a.shape[1] * a.shape[2]
      j_style = j_style + w * ((self.grams[layer] - _gram(a)) ** 2).sum() / (4.0 * c**2 * hw**2)
    return self.alpha * j_content + self.beta * j_style

  def step(self) -> None:
    self.opt.zero_grad(set_to_none=True)
    value = self.loss(self.image)
    value.backward()
    self.opt.step()
    with torch.no_grad():
      self.image.clamp_(0.0, 1.0)
    self.value = value.detach()
    if self.device.type == "cuda":
      torch.cuda.synchronize(self.device)
