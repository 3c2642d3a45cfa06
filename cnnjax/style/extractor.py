"""The feature extractor of style transfer: the zoo's VGG, built to fit a parameter tree, read by name.

The parameters have the layout of `cnnjax.models.vgg.VGG` (`conv{b}_{i}` with
`kernel` HWIO and `bias`; `fc6`, `fc7`, `fc8` Dense), so converted torchvision or
Keras weights, a classification checkpoint, or `init_vgg_params` all plug in.
The network's blocks and widths are taken from the tree, so any width works
(reduced-width test networks too), and its activations are read with
`cnnjax.models.intermediates`.

Taps: `conv{b}_{i}` (pre-activation), `relu{b}_{i}`, `pool{b}`, and `fc6`, `fc7`,
`fc8` (pre-activation Dense outputs; fc6 reads the NHWC-flattened last pool).
Under `jax.jit` only the layers up to the deepest requested tap are computed.

Preprocessing of inputs in [0, 1] RGB:
- `'torch'`: `(x - mean) / std` with torchvision's ImageNet mean/std (torchvision
  weights, checkpoints, random weights);
- `'caffe'`: Keras/Caffe VGG convention: `255 x` in BGR channel order minus the
  BGR ImageNet mean, no scaling (Keras `.h5` VGG weights were trained this way).
"""

from collections.abc import Sequence
import re

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.models.intermediates import intermediates
from cnnjax.models.vgg import VGG, tap_names

STAGE_SIZES = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)
TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
_CONV = re.compile(r"conv(\d+)_(\d+)$")
_TAP = re.compile(r"(conv|relu)(\d+)_(\d+)$|pool(\d+)$|fc([678])$")


def conv_names(params) -> list[str]:
  """The `conv{b}_{i}` layer names of a VGG parameter tree, in forward order."""
  names = [k for k in params if _CONV.match(k)]
  return sorted(names, key=lambda k: tuple(int(g) for g in _CONV.match(k).groups()))


def layer_names(params) -> list[str]:
  """Every tap name the parameter tree supports, in forward order."""
  blocks = [int(_CONV.match(name).group(1)) for name in conv_names(params)]
  stage_sizes = tuple(blocks.count(b) for b in range(1, max(blocks, default=0) + 1))
  return tap_names(stage_sizes) + [f for f in ("fc6", "fc7", "fc8") if f in params]


def preprocess(images: jax.Array, preprocessing: str = "torch") -> jax.Array:
  """Maps [0, 1] RGB images `[..., 3]` to the network's input convention."""
  if preprocessing == "torch":
    return (images - TORCH_MEAN) / TORCH_STD
  if preprocessing == "caffe":
    return images[..., ::-1] * 255.0 - CAFFE_MEAN_BGR
  raise ValueError(f"preprocessing={preprocessing!r}: expected 'torch' or 'caffe'")


def vgg_features(params, images: jax.Array, taps: Sequence[str], *, pool: str = "avg",
                 preprocessing: str = "torch", dtype=jnp.float32) -> dict[str, jax.Array]:
  """Activations of `taps` for [0, 1] RGB `images` `[N, H, W, 3]`.

  Args:
    params: VGG parameter tree (`conv{b}_{i}`, optionally `fc6..8`).
    images: `[N, H, W, 3]` floats in [0, 1].
    taps: names from `layer_names(params)`.
    pool: `'max'` (classification) or `'avg'` (Gatys et al.'s choice for synthesis).
    preprocessing: `'torch'` or `'caffe'` (see the module docstring).
    dtype: compute precision.
  """
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images.shape={tuple(images.shape)}: expected [N, H, W, 3] RGB")
  if pool not in ("max", "avg"):
    raise ValueError(f"pool={pool!r}: expected 'max' or 'avg'")
  order = layer_names(params)
  unknown = [t for t in taps if t not in order]
  if unknown or not taps:
    raise ValueError(f"taps={list(taps)}: unknown {unknown}; expected a non-empty subset of {order}")
  needed = order[:max(order.index(t) for t in taps) + 1]  # the layers up to the deepest tap
  convs = [name for name in conv_names(params) if name in needed]
  blocks = [int(_CONV.match(name).group(1)) for name in convs]
  stage_sizes = tuple(blocks.count(b) for b in range(1, blocks[-1] + 1))
  widths = tuple(np.shape(params[f"conv{b}_1"]["kernel"])[-1] for b in range(1, blocks[-1] + 1))
  with_top = any(t.startswith("fc") for t in taps)
  top = dict(num_classes=np.shape(params["fc8"]["kernel"])[-1], hidden=np.shape(params["fc6"]["kernel"])[-1]) \
      if with_top else {}
  model = VGG(stage_sizes=stage_sizes, widths=widths, pool=pool, dtype=dtype, features_only=not with_top,
              final_pool=with_top or needed[-1].startswith("pool"), **top)
  trunk = {k: v for k, v in params.items() if k in convs or with_top and k in ("fc6", "fc7", "fc8")}
  x = preprocess(images.astype(jnp.float32), preprocessing).astype(dtype)
  return intermediates(model, {"params": trunk}, x, taps)


def init_vgg_params(key: jax.Array, arch: str = "vgg19", *, widths: Sequence[int] = WIDTHS,
                    taps: Sequence[str] | None = None) -> dict:
  """Random VGG trunk parameters (He-normal kernels, zero biases), up to the deepest of `taps`.

  He initialisation keeps activation scales steady through the ReLU stack, which
  matters when random features drive style transfer (no pretrained weights here).
  """
  if arch not in STAGE_SIZES:
    raise ValueError(f"arch={arch!r}: expected one of {sorted(STAGE_SIZES)}")
  names = [f"conv{b}_{i}" for b, n in enumerate(STAGE_SIZES[arch], 1) for i in range(1, n + 1)]
  if taps is not None:
    names = names[:_deepest_conv(names, taps) + 1]
  shapes, c_in = [], 3
  for name in names:
    shapes.append((3, 3, c_in, widths[int(_CONV.match(name).group(1)) - 1]))
    c_in = shapes[-1][-1]
  # One draw for all kernels: a single small program instead of one compile per layer shape.
  flat = np.asarray(jax.random.normal(key, (sum(int(np.prod(s)) for s in shapes),), jnp.float32))
  params, offset = {}, 0
  for name, shape in zip(names, shapes):
    n = int(np.prod(shape))
    std = np.sqrt(2.0 / (9 * shape[2]))
    params[name] = {"kernel": jnp.asarray(std * flat[offset:offset + n].reshape(shape)),
                    "bias": jnp.zeros((shape[-1],), jnp.float32)}
    offset += n
  return params


def _deepest_conv(names: list[str], taps: Sequence[str]) -> int:
  """Index in `names` of the deepest conv layer that `taps` need."""
  best = -1
  for t in taps:
    m = _TAP.match(t)
    if m and m.group(4):
      block = [j for j, n in enumerate(names) if n.startswith(f"conv{m.group(4)}_")]
      idx = block[-1] if block else None
    elif m and m.group(2):
      conv = f"conv{m.group(2)}_{m.group(3)}"
      idx = names.index(conv) if conv in names else None
    else:
      idx = None
    if idx is None:
      raise ValueError(f"tap {t!r}: expected a conv/relu/pool layer among {names}")
    best = max(best, idx)
  return best


def resolve_weights(weights: str, checkpoint_dir: str, *, arch: str, taps: Sequence[str],
                    seed: int = 0) -> tuple[dict, str, str]:
  """VGG parameters for the extractor: a weights file, else a classification checkpoint, else random.

  Returns:
    (params, preprocessing, description) with description `'torchvision:<path>'`,
    `'keras:<path>'`, `'checkpoint:<dir>'` or `'random'`.
  """
  if weights:
    from cnnjax.transfer.convert import load_vgg
    converted = load_vgg(weights)
    params, preprocessing, source = converted.params, converted.preprocessing, converted.source
  elif checkpoint_dir:
    from cnnjax.train.checkpoint import load_variables
    params, preprocessing, source = load_variables(checkpoint_dir)["params"], "torch", f"checkpoint:{checkpoint_dir}"
  else:
    return init_vgg_params(jax.random.key(seed), arch, taps=taps), "torch", "random"
  first = params.get("conv1_1", {}).get("kernel")
  if first is None or np.shape(first)[2] != 3:
    raise ValueError(f"weights {source!r}: conv1_1/kernel has shape {np.shape(first)}; expected a VGG "
                     f"trained on RGB images (3 input channels)")
  missing = [t for t in taps if t not in layer_names(params)]
  if missing:
    raise ValueError(f"weights {source!r} lack the layers for taps {missing}")
  return params, preprocessing, source
