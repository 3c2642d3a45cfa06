"""Convolutions made fast on XLA:CPU: compile options and a drop-in `conv_general_dilated`.

Measured on one core (BUILD.md, issue 7); GPUs and TPUs are left as they are.

- `compiler_options`: jaxlib 0.10's XLA:CPU hands convolutions and matrix
  products to YNNPACK. For a train step's weight gradients that is 2-8x slower
  than XLA's Eigen kernels (ResNet-20's 32x32x16 3x3 layer: 25 -> 12 ms;
  LeNet-5's conv1: 25 -> 3 ms), and its products are no faster here, so the
  options keep YNNPACK for reductions only (without it BatchNorm's reductions
  become a slow `reduce-window`).
- `conv_general_dilated`, on the CPU, for 2D channels-last convolutions:
  - few input channels (a first layer, LeNet-5's conv2) are a poor fit for
    XLA:CPU's convolution kernels. Such a layer runs as one matrix product per
    output row (and width tile): the `kh` input rows it reads, times a banded
    (Toeplitz) matrix built from the kernel. That costs up to about
    `BAND_SPAN` times the multiply-adds of a direct convolution, bought back
    by running as a dense matrix product that XLA computes once and never
    fuses into its consumers; autodiff of it gives the gradients. Wide images
    (more than `MAX_BANDED_COST` kernels) stay on the library conv, which is
    faster there (ResNet-50's stem at 224 px).
  - every other layer is the library conv, with a weight gradient computed
    from transposed copies that read the stored activations (`_transpose`):
    ResNet-20's train step 715 -> 600 ms.
"""

from collections.abc import Sequence
import functools

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

MAX_BANDED_CHANNELS = 8  # input channels up to which a conv can run as a banded matrix product
MAX_BANDED_COST = 12  # ... and a padded input at most this many kernels wide (Wp / kw)
BAND_SPAN = 4  # kernel widths of input columns per band tile
_YNN_FOR = ("LIBRARY_FUSION_TYPE_REDUCE",)
_NHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2))


def compiler_options(platform: str) -> dict[str, str] | None:
  """`jax.jit(..., compiler_options=...)` for a program that runs on `platform` ('cpu', 'gpu', ..)."""
  return {"xla_cpu_experimental_ynn_fusion_type": ",".join(_YNN_FOR)} if platform == "cpu" else None


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None):
  """Same arguments and result as `lax.conv_general_dilated` (usable as `nn.Conv(conv_general_dilated=...)`)."""
  call = functools.partial(lax.conv_general_dilated, window_strides=window_strides, padding=padding,
                           lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                           dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
                           batch_group_count=batch_group_count, precision=precision,
                           preferred_element_type=preferred_element_type)
  dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) if dimension_numbers else None
  plain_args = (lhs_dilation in (None, (1, 1)) and rhs_dilation in (None, (1, 1)) and feature_group_count == 1
                and batch_group_count == 1 and preferred_element_type is None)
  if not (lhs.ndim == 4 and dn == _NHWC and plain_args):
    return call(lhs, rhs)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
  pads = tuple(tuple(p) for p in padding)
  narrow = (rhs.shape[2] <= MAX_BANDED_CHANNELS
            and (lhs.shape[2] + sum(pads[1])) / rhs.shape[1] <= MAX_BANDED_COST)
  cpu = functools.partial(banded_conv if narrow else _conv, strides=tuple(window_strides), pads=pads,
                          precision=precision)
  return lax.platform_dependent(lhs, rhs, cpu=cpu, default=lambda x, w: call(x, w))


def _lax_conv(x, w, strides, pads, precision):
  return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x, w, strides, pads, precision):
  """The library conv, with a weight gradient that reads the stored activations (see `_transpose`)."""
  return _lax_conv(x, w, strides, pads, precision)


def _conv_fwd(x, w, strides, pads, precision):
  return _lax_conv(x, w, strides, pads, precision), (x, w)


def _conv_bwd(strides, pads, precision, residuals, dy):
  x, w = residuals
  dx = jax.vjp(lambda x_: _lax_conv(x_, w, strides, pads, precision), x)[1](dy)[0]
  # dw[i, j, c, d] = sum over n, h, w of x[n, h*s + i, w*s + j, c] dy[n, h, w, d]: a conv of x as
  # [C, H, W, N] with dy as a [Ho, Wo, N, D] kernel dilated by the stride, XLA:CPU's own lowering.
  kh, kw = w.shape[:2]
  dw = lax.conv_general_dilated(_transpose(x, (3, 1, 2, 0)), _transpose(dy, (1, 2, 0, 3)), (1, 1), pads,
                                rhs_dilation=strides, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                precision=precision)
  return dx, jnp.transpose(dw[:, :kh, :kw], (1, 2, 0, 3)).astype(w.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


def _transpose(x: jax.Array, perm: Sequence[int]) -> jax.Array:
  """`jnp.transpose(x, perm)` that reads `x` where it is stored.

  XLA:CPU fuses the element-wise producers of a transpose into it and recomputes
  them in the transposed order: for a ResNet's weight gradients, the BatchNorm,
  ReLU and residual sums of a whole stage (up to 54 ms for one 8 MB copy, where
  a plain transpose takes 1.5 ms). A product with the identity is never fused
  that way and is exact (one nonzero term per sum).
  """
  eye = jnp.eye(x.shape[-1], dtype=x.dtype)
  return jnp.transpose(jnp.matmul(x, eye, precision=lax.Precision.HIGHEST), perm)


def banded_conv(x: jax.Array, w: jax.Array, *, strides, pads, precision=None) -> jax.Array:
  """NHWC `x` * HWIO `w` as one matrix product: stacked input rows times a banded (Toeplitz) matrix.

  The output width is cut into tiles of `Wt` columns, each read from `(Wt - 1) * sw + kw`
  input columns, as few tiles as keep that span within `BAND_SPAN` kernel widths: a row of
  the product is one tile of one output row, `[N*Ho*tiles, kh*span*C] @ [kh*span*C, Wt*D]`.
  """
  (kh, kw, c, d), (sh, sw) = w.shape, strides
  xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  n, hp, wp, _ = xp.shape
  ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
  tiles = -(-wp // (BAND_SPAN * kw))
  wt = -(-wo // tiles)
  span = (wt - 1) * sw + kw
  xp = jnp.pad(xp, ((0, 0), (0, 0), (0, max(0, (tiles * wt - 1) * sw + kw - wp)), (0, 0)))  # whole last tile
  band = np.zeros((kw, span, wt), np.float32)  # band[j, v, o] = 1 where column v of a span is tap j of output o
  for j in range(kw):
    band[j, np.arange(wt) * sw + j, np.arange(wt)] = 1
  dtype = jnp.result_type(x, w)
  matrix = jnp.einsum("jvo,ijcd->ivcod", band.astype(dtype), w.astype(dtype)).reshape(kh * span * c, wt * d)
  rows = jnp.stack([xp[:, i:i + (ho - 1) * sh + 1:sh, t * wt * sw:t * wt * sw + span]
                    for t in range(tiles) for i in range(kh)], axis=2).reshape(n * ho * tiles, kh * span * c)
  y = jnp.matmul(rows.astype(dtype), matrix, precision=precision).reshape(n, ho, tiles * wt, d)
  return y[:, :, :wo]
