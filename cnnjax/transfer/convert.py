"""Pretrained weight files -> cnnjax parameter trees (nothing is downloaded).

- torchvision VGG state dicts (`features.N.weight/bias`, `classifier.0/3/6`), from
  `.pth`/`.pt` (read with `torch.load(weights_only=True)`; torch is imported lazily)
  or `.safetensors` (`safetensors.numpy`, no torch needed);
- Keras 2 `.h5` VGG16/VGG19 files (layers `block{b}_conv{i}`, `fc1`, `fc2`,
  `predictions`); these expect Caffe preprocessing (BGR, 0..255, mean subtracted),
  which `cnnjax.style.extractor.vgg_features(..., preprocessing='caffe')` applies.

The output is the `cnnjax.models.vgg.VGG` layout: `conv{b}_{i}` (kernel HWIO, bias),
`fc6`/`fc7`/`fc8` (kernel `(in, out)`, fc6's input in NHWC flatten order). The
architecture (blocks, widths, classes) is read from the file, never assumed.
"""

from collections.abc import Mapping
import os
from typing import Any, NamedTuple

import numpy as np

from cnnjax.train.checkpoint import check_shapes


class VGGWeights(NamedTuple):
  """Converted VGG parameters and the input convention they were trained with."""
  params: dict
  preprocessing: str  # 'torch' or 'caffe'
  source: str  # 'torchvision:<path>' or 'keras:<path>'


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a PyTorch state dict from `.pth`/`.pt` (needs torch) or `.safetensors` as NumPy arrays."""
  _check_file(path)
  if path.endswith(".safetensors"):
    from safetensors.numpy import load_file
    try:
      return dict(load_file(path))
    except Exception as e:  # safetensors raises its own error types for corrupt headers
      raise ValueError(f"{path}: not a readable safetensors file ({e})") from e
  try:
    import torch
  except ImportError as e:
    raise ImportError(f"reading {path} needs torch (pip install torch), or convert the file to "
                      f".safetensors, which needs only the safetensors package") from e
  try:
    sd = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:
    raise ValueError(f"{path}: not a readable PyTorch weights file ({e})") from e
  if isinstance(sd, Mapping) and "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
    sd = sd["state_dict"]
  if not isinstance(sd, Mapping):
    raise ValueError(f"{path}: expected a state dict (mapping of names to tensors), got {type(sd).__name__}")
  return {k: v.detach().cpu().numpy() for k, v in sd.items() if hasattr(v, "numpy")}


def convert_torchvision_vgg(state_dict: Mapping[str, np.ndarray]) -> dict:
  """torchvision VGG (no batch norm) state dict -> VGG parameter tree."""
  sd = {k.removeprefix("module."): np.asarray(v) for k, v in state_dict.items()}
  if any(k.endswith("running_mean") for k in sd):
    raise ValueError("state_dict has batch-norm statistics (a vgg*_bn model); expected plain VGG")
  idx = sorted({int(k.split(".")[1]) for k in sd if k.startswith("features.") and k.endswith(".weight")})
  if not idx:
    raise ValueError(f"state_dict has no 'features.N.weight' keys; expected a torchvision VGG "
                     f"(first keys: {list(sd)[:5]})")
  params, block, i = {}, 1, 0
  for j, n in enumerate(idx):
    # Each conv is followed by a ReLU (2 slots); one more slot means a max pool came between.
    if j and n - idx[j - 1] > 2:
      block, i = block + 1, 0
    i += 1
    w = sd[f"features.{n}.weight"]
    if w.ndim != 4:
      raise ValueError(f"features.{n}.weight.shape={w.shape}: expected a conv kernel (O, I, kH, kW)")
    params[f"conv{block}_{i}"] = {"kernel": w.transpose(2, 3, 1, 0), "bias": sd[f"features.{n}.bias"]}
  fcs = sorted({int(k.split(".")[1]) for k in sd if k.startswith("classifier.") and k.endswith(".weight")})
  if fcs and len(fcs) != 3:
    raise ValueError(f"classifier has Linear layers {fcs}; expected three (classifier.0/3/6)")
  for name, n in zip(("fc6", "fc7", "fc8"), fcs):
    w = sd[f"classifier.{n}.weight"].T
    if name == "fc6":
      w = _nchw_to_nhwc_rows(w, params[f"conv{block}_{i}"]["kernel"].shape[-1])
    params[name] = {"kernel": w, "bias": sd[f"classifier.{n}.bias"]}
  return params


def convert_torchvision_resnet(state_dict: Mapping[str, np.ndarray]) -> dict:
  """torchvision ResNet state dict -> `{'params', 'batch_stats'}` of `cnnjax.models.resnet.ResNet`.

  Names: `conv1`/`bn1` stem, `layer{s}.{b}.conv{k}`/`bn{k}` -> `layer{s}_{b}/conv{k}`/`bn{k}`,
  `downsample.0`/`.1` -> `downsample_conv`/`downsample_bn`, `fc`. BatchNorm `weight`
  becomes `scale`, `running_mean`/`running_var` the `mean`/`var` batch statistics.
  """
  params: dict = {}
  stats: dict = {}
  for key, value in state_dict.items():
    parts = key.removeprefix("module.").split(".")
    leaf = parts.pop()
    if leaf == "num_batches_tracked":
      continue
    if parts[0].startswith("layer") and len(parts) > 1:
      parts[:2] = [f"{parts[0]}_{parts[1]}"]
    if len(parts) > 2 and parts[-2] == "downsample":
      parts[-2:] = ["downsample_conv" if parts[-1] == "0" else "downsample_bn"]
    value = np.asarray(value)
    if leaf in ("running_mean", "running_var"):
      tree, leaf = stats, leaf.removeprefix("running_")
    elif leaf == "weight" and value.ndim == 1:
      tree, leaf = params, "scale"
    elif leaf == "weight":
      tree, leaf = params, "kernel"
      value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
    elif leaf == "bias":
      tree = params
    else:
      raise ValueError(f"state_dict key {key!r}: unexpected parameter {leaf!r} for a torchvision ResNet")
    node = tree
    for p in parts:
      node = node.setdefault(p, {})
    node[leaf] = value
  if "conv1" not in params or "fc" not in params:
    raise ValueError(f"state_dict has no 'conv1.weight' or 'fc.weight'; expected a torchvision ResNet "
                     f"(first keys: {list(state_dict)[:5]})")
  return {"params": params, "batch_stats": stats}


def _nchw_to_nhwc_rows(w: np.ndarray, channels: int) -> np.ndarray:
  """Permutes fc6's input rows from torch's (C, H, W) flatten order to NHWC's (H, W, C)."""
  hw = w.shape[0] // channels
  side = int(round(np.sqrt(hw)))
  if side * side * channels != w.shape[0]:
    raise ValueError(f"fc6 input size {w.shape[0]} is not side*side*{channels}; expected a square last map")
  return w.reshape(channels, side, side, -1).transpose(1, 2, 0, 3).reshape(w.shape[0], -1)


def convert_keras_vgg(path: str) -> dict:
  """Keras 2 `.h5` VGG16/VGG19 weights (full model or `save_weights`) -> VGG parameter tree."""
  import h5py
  _check_file(path)
  try:
    f = h5py.File(path, "r")
  except OSError as e:
    raise ValueError(f"{path}: not a readable HDF5 file ({e})") from e
  with f:
    root = f["model_weights"] if "model_weights" in f else f
    if "layer_names" not in root.attrs:
      raise ValueError(f"{path}: no 'layer_names' attribute; expected a Keras 2 .h5 weight file")
    params = {}
    for layer in (_str(n) for n in root.attrs["layer_names"]):
      name = _keras_name(layer)
      weights = [np.asarray(root[layer][_str(w)]) for w in root[layer].attrs.get("weight_names", [])]
      if name is None or not weights:
        continue
      kernel = next((w for w in weights if w.ndim in (2, 4)), None)
      bias = next((w for w in weights if w.ndim == 1), None)
      if kernel is None or bias is None:
        raise ValueError(f"{path}: layer {layer!r} has weights of shapes {[w.shape for w in weights]}; "
                         f"expected a kernel and a bias")
      params[name] = {"kernel": kernel, "bias": bias}
  if not any(k.startswith("conv") for k in params):
    raise ValueError(f"{path}: no 'block{{b}}_conv{{i}}' layers; expected a Keras VGG16/VGG19 file")
  return params


def _keras_name(layer: str) -> str | None:
  if layer.startswith("block") and "_conv" in layer:
    b, i = layer.removeprefix("block").split("_conv")
    return f"conv{int(b)}_{int(i)}"
  return {"fc1": "fc6", "fc2": "fc7", "predictions": "fc8"}.get(layer)


def _str(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def load_vgg(path: str, *, expected: Any = None) -> VGGWeights:
  """Converts a torchvision (`.pth`, `.pt`, `.safetensors`) or Keras (`.h5`, `.hdf5`) VGG file.

  Args:
    path: the weights file.
    expected: optional parameter tree (arrays or `jax.eval_shape` output) the
      result must match, e.g. `create('vgg16', num_classes=1000).init(...)['params']`.
  """
  if path.endswith((".h5", ".hdf5")):
    out = VGGWeights(convert_keras_vgg(path), "caffe", f"keras:{path}")
  elif path.endswith((".pth", ".pt", ".safetensors")):
    out = VGGWeights(convert_torchvision_vgg(load_state_dict(path)), "torch", f"torchvision:{path}")
  else:
    raise ValueError(f"weights path {path!r}: expected a .pth, .pt, .safetensors, .h5 or .hdf5 file")
  if expected is not None:
    check_shapes(out.params, expected, source=f"weights file {path}")
  return out


def _check_file(path: str) -> None:
  if not os.path.isfile(path):
    raise ValueError(f"weights path {path!r}: no such file")
