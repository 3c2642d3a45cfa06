"""How much memory a style-transfer step needs, estimated before anything is allocated.

The step (`transfer.compiled_functions(...).step`) holds the VGG parameters up to
the deepest tap, the image, its optimizer state and the targets as arguments, the
new image and optimizer state as outputs, and as temporaries the activations of
every conv and pool up to the deepest tap twice over (kept by the forward pass
and their gradients in the backward pass). Measured against XLA's own
`memory_analysis()` of the compiled step (tests/style/test_memory.py), the
estimate is within 0.7-1.5x from 64 px up, where the activations dominate.
Below that XLA:CPU may keep a transposed copy of every kernel (up to one more
parameter set, ~80 MB for VGG-19's), which the estimate leaves out.
"""

from collections.abc import Sequence
import math
import os

import jax
import jax.numpy as jnp

from cnnjax.models.vgg import tap_names
from cnnjax.style.extractor import STAGE_SIZES, WIDTHS
from cnnjax.style.transfer import optimizer_for

GIB = 2 ** 30


def estimate_bytes(image_hw: int | Sequence[int], taps: Sequence[str], *, arch: str = "vgg19",
                   widths: Sequence[int] = WIDTHS, optimizer: str = "adam", dtype=jnp.float32) -> int:
  """Estimated peak bytes of one style step on an image of `image_hw` (a side or (H, W)).

  Args:
    image_hw: the generated image's size (the largest scale of a pyramid).
    taps: the content layer first, then the style layers (`relu4_2`, `relu1_1`, ...); the network runs up
      to the deepest.
    arch: 'vgg16' or 'vgg19'; widths: channels of each block (the zoo VGG's by default).
    optimizer: 'adam' or 'lbfgs' (their state is sized by `jax.eval_shape`: nothing is allocated).
    dtype: compute dtype of the activations (parameters stay float32).
  """
  hw = (image_hw, image_hw) if isinstance(image_hw, int) else tuple(image_hw)
  names = tap_names(STAGE_SIZES[arch])
  unknown = [t for t in taps if t not in names]
  if unknown or not taps:
    raise ValueError(f"taps={list(taps)}: unknown {unknown}; expected a non-empty subset of {names}")
  itemsize = jnp.dtype(dtype).itemsize
  params = activations = largest_kernel = 0
  (h, w), c = hw, 3
  shapes = {}  # name -> (h, w, c) of its output
  for name in names[:max(names.index(t) for t in taps) + 1]:
    if name.startswith("conv"):
      c_out = widths[int(name[4:].split("_")[0]) - 1]
      kernel = (9 * c + 1) * c_out * 4
      params, largest_kernel, c = params + kernel, max(largest_kernel, kernel), c_out
    elif name.startswith("pool"):
      h, w = h // 2, w // 2
    shapes[name] = (h, w, c)
    if not name.startswith("relu"):  # XLA fuses each ReLU into its conv
      activations += h * w * c * itemsize
  image = jax.ShapeDtypeStruct((*hw, 3), jnp.float32)
  opt_state = jax.eval_shape(optimizer_for(optimizer, 1.0).init, image)
  state = sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(opt_state)) + math.prod(hw) * 12
  # Targets: the content activation and a Gram matrix per style layer, float32.
  targets = math.prod(shapes[taps[0]]) * 4 + sum(shapes[t][2] ** 2 * 4 for t in taps[1:])
  cast = params * itemsize // 4 if itemsize < 4 else 0  # a low-precision copy of the parameters
  return int(params + cast + largest_kernel + 2 * activations + 2 * state + targets)


def default_limit_bytes() -> int:
  """90% of the default device's memory: an accelerator's `bytes_limit`, else the host's physical memory."""
  stats = jax.devices()[0].memory_stats() or {}
  if stats.get("bytes_limit"):
    return int(0.9 * stats["bytes_limit"])
  return int(0.9 * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def largest_fitting_size(limit: int, taps: Sequence[str], **kwargs) -> int:
  """The largest square side whose estimate is within `limit` bytes (0 if none is)."""
  low, high = 0, 1
  while estimate_bytes(high, taps, **kwargs) <= limit:
    low, high = high, high * 2
  while high - low > 1:
    mid = (low + high) // 2
    low, high = (mid, high) if estimate_bytes(mid, taps, **kwargs) <= limit else (low, mid)
  return low


def check_fits(image_size: int, taps: Sequence[str], limit_gb: float, *, field: str = "image_size",
               **kwargs) -> int:
  """Raises ValueError when the step's estimate exceeds the limit (-1: `default_limit_bytes()`, 0: no check).

  Returns the estimate in bytes.
  """
  estimate = estimate_bytes(image_size, taps, **kwargs)
  if limit_gb == 0:
    return estimate
  limit = default_limit_bytes() if limit_gb < 0 else int(limit_gb * GIB)
  if estimate > limit:
    fits = largest_fitting_size(limit, taps, **kwargs)
    raise ValueError(
        f"config.{field}={image_size!r}: expected a size whose style step fits in memory; it needs an estimated "
        f"{estimate / GIB:.2f} GiB, over the limit of {limit / GIB:.2f} GiB (config.memory_limit_gb={limit_gb}); "
        f"image_size={fits} fits (set memory_limit_gb=0 to skip this check)")
  return estimate
