"""XLA:CPU made fast: compile options, host memory reuse, a drop-in `conv_general_dilated`, a fusion barrier.

Measured on one core (BUILD.md, issue 7); GPUs and TPUs are left as they are.

- `compiler_options`: jaxlib 0.10's XLA:CPU hands convolutions and matrix
  products to YNNPACK. For a train step's weight gradients that is 2-8x slower
  than XLA's Eigen kernels (ResNet-20's 32x32x16 3x3 layer: 25 -> 12 ms;
  LeNet-5's conv1: 25 -> 3 ms), and its products are no faster here, so the
  options keep YNNPACK for reductions only (without it BatchNorm's reductions
  become a slow `reduce-window`).
- `reuse_host_memory`: without it every step maps, page-faults and zeroes its
  temporaries anew (ResNet-20's train step: 641 -> 530 ms). Applied when
  `cnnjax.ops` is first imported (which every model and train step does).
- `conv_general_dilated`, on the CPU, for 2D channels-last convolutions with
  few input channels (a first layer, LeNet-5's conv2), which are a poor fit for
  XLA:CPU's convolution kernels. Such a layer runs as one matrix product per
  output row (and width tile): the `kh` input rows it reads, times a banded
  (Toeplitz) matrix built from the kernel. That costs up to about `BAND_SPAN`
  times the multiply-adds of a direct convolution, bought back by running as a
  dense matrix product that XLA computes once and never fuses into its
  consumers; autodiff of it gives the gradients. Wide images (more than
  `MAX_BANDED_COST` kernels) stay on the library conv, which is faster there
  (ResNet-50's stem at 224 px). Layers with 16-512 channels run on the
  compiled kernels of `cnnjax.ops.kernels` (ResNet-20's train step:
  510 -> 376 ms); every other layer stays on the library conv.
- `fusion_barrier`: a value XLA:CPU computes once instead of recomputing it in each
  reader, for a ResNet's activations (ResNet-20's train step: 689 -> 629 ms).
"""

import ctypes
import functools

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from cnnjax.ops import kernels

MAX_BANDED_CHANNELS = 8  # input channels up to which a conv can run as a banded matrix product
MAX_BANDED_COST = 12  # ... and a padded input at most this many kernels wide (Wp / kw)
BAND_SPAN = 4  # kernel widths of input columns per band tile
_YNN_FOR = ("LIBRARY_FUSION_TYPE_REDUCE",)
_NO_MMAP_NO_TRIM = ((-4, 0), (-1, 2**31 - 1))  # glibc mallopt: M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 2 GiB
_NHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2))

def compiler_options(platform: str) -> dict[str, str] | None:
  """`jax.jit(..., compiler_options=...)` for a program that runs on `platform` ('cpu', 'gpu', ..)."""
  return {"xla_cpu_experimental_ynn_fusion_type": ",".join(_YNN_FOR)} if platform == "cpu" else None


def reuse_host_memory() -> bool:
  """Keeps a CPU step's temporaries mapped from one step to the next; True where it applied (glibc).

  XLA:CPU allocates a step's temporaries as one block (ResNet-20's train step at
  batch 128: 343 MB) on the thread that runs the step. glibc maps a block that
  large anew and unmaps it when it is freed, so every step page-faults and
  zeroes all of it again (84,000 faults, ~110 ms of a ~630 ms step on one core).
  Here glibc is told never to map or trim its heap, and single-device CPU
  programs run on the calling thread (`jax_cpu_enable_async_dispatch=False`),
  whose heap then keeps the block. The price: Python no longer runs ahead of a
  step (`data.pipeline.prefetch_to_mesh` reads batches on a thread of its own
  for that). Multi-device CPU programs still run on worker threads, faults and all.
  The calling-thread setting takes effect only where JAX has not started its CPU
  backend yet (`cnnjax.ops` applies it when first imported); GPU and TPU programs
  are not affected.
  """
  mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
  if mallopt is None or not all([mallopt(param, value) == 1 for param, value in _NO_MMAP_NO_TRIM]):
    return False
  jax.config.update("jax_cpu_enable_async_dispatch", False)
  return True


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
  if rhs.shape[2] <= MAX_BANDED_CHANNELS and (lhs.shape[2] + sum(pads[1])) / rhs.shape[1] <= MAX_BANDED_COST:
    cpu = functools.partial(banded_conv, strides=tuple(window_strides), pads=pads, precision=precision)
  elif len(set(window_strides)) == 1 and kernels.supports(lhs, rhs, pads, window_strides[0]):
    cpu = lambda x, w: kernels.conv_nhwc(x, w, pads, window_strides[0])
  else:
    return call(lhs, rhs)
  return lax.platform_dependent(lhs, rhs, cpu=cpu, default=lambda x, w: call(x, w))


def fusion_barrier(x: jax.Array) -> jax.Array:
  """`x`, computed once and read from memory by all its consumers; in the backward pass, its gradient too.

  XLA:CPU copies a chain of element-wise ops into every consumer it can fuse
  them into, and has no fusion barrier of its own (it drops
  `optimization_barrier`). In a ResNet the residual sums make that chain as long
  as a stage: each block recomputed the BatchNorm, ReLU and sums of the blocks
  before it, in the forward pass and for every weight gradient. Values are
  unchanged; other platforms get `x` as it is.
  """
  return lax.platform_dependent(x, cpu=_once, default=lambda x: x)


@jax.custom_vjp
def _once(x):
  return _barrier_loop(x)


_once.defvjp(lambda x: (_barrier_loop(x), None), lambda _, g: (_barrier_loop(g),))


def _barrier_loop(x: jax.Array) -> jax.Array:
  """`x` passed through a loop that XLA can neither remove nor fuse across.

  The loop runs once or not at all, by the top bit of an `rng_bit_generator`
  draw that XLA does not fold (so it cannot know the trip count), and rewrites a
  column of `x` with itself: the result is `x` either way, for a few microseconds. The column spans
  the leading (batch) axis, so a batch-sharded `x` needs no communication.
  """
  if x.ndim == 0:
    return x
  at, column = (0,) * x.ndim, (x.shape[0],) + (1,) * (x.ndim - 1)

  def rewrite_column(carry):
    i, y = carry
    return i + 1, lax.dynamic_update_slice(y, lax.dynamic_slice(y, at, column), at)

  _, bits = lax.rng_bit_generator(jnp.zeros((4,), jnp.uint32), (), dtype=jnp.uint32)
  start = (bits >> 31).astype(jnp.int32)
  return lax.while_loop(lambda carry: carry[0] < 1, rewrite_column, (start, x))[1]


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
