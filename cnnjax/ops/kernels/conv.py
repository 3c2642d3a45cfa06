"""2D convolution, NHWC float32 with stride 1, on this folder's CPU kernels: values, gradients, batch sharding.

`conv_nhwc(x, w, pads)` equals `lax.conv_general_dilated(x, w, (1, 1), pads,
dimension_numbers=('NHWC', 'HWIO', 'NHWC'))`. Its gradient is two more kernel
calls: the input gradient is the same convolution of the output gradient with
the kernel flipped and its channel axes swapped, and the weight gradient sums
input times output gradient over pixels straight from the NHWC arrays (XLA:CPU
first transposes both, ~40% of its time for ResNet-20). Under a batch-sharded
`jit`, each device runs the kernels on its own shard; the weight gradient is
then summed over the devices. Channel counts must be multiples of `LANES`.
"""

import functools

import jax
from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec as P
import numpy as np

from cnnjax.ops.kernels import build

LANES = 16  # channels per vector register in the kernels (AVX-512 float32)
MAX_CHANNELS = 256  # with more, XLA's weight gradient is the faster one (BUILD.md)
MAX_FORWARD_CHANNELS = 64  # up to here the kernel's forward pass beats XLA's, on one core and more on two (BUILD.md)


def supports(x: jax.Array, w: jax.Array, pads) -> bool:
  """Whether `conv_nhwc(x, w, pads)` applies and pays: float32, channels in multiples of `LANES` up to
  `MAX_CHANNELS`, pads within the kernel."""
  channels = (x.shape[-1], w.shape[3])
  return (x.ndim == 4 and x.dtype == w.dtype == np.float32 and all(c % LANES == 0 for c in channels)
          and max(channels) <= MAX_CHANNELS and all(0 <= p < k for k, side in zip(w.shape[:2], pads) for p in side))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_nhwc(x: jax.Array, w: jax.Array, pads: tuple[tuple[int, int], tuple[int, int]],
              kernel_forward: bool | None = None) -> jax.Array:
  """NHWC `x` * HWIO `w`, stride 1, `pads` = ((top, bottom), (left, right)) (see `supports`).

  `kernel_forward`: whether the forward pass and the input gradient run on the kernel too (None: where
  it is the faster one, up to `MAX_FORWARD_CHANNELS` channels) or on XLA's convolution.
  """
  return _forward(x, w, pads, kernel_forward)


def _forward(x, w, pads, kernel_forward):
  if max(w.shape[2:]) <= MAX_FORWARD_CHANNELS if kernel_forward is None else kernel_forward:
    return _conv(x, w, pads)
  return lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _conv_fwd(x, w, pads, kernel_forward):
  return _forward(x, w, pads, kernel_forward), (x, w)


def _conv_bwd(pads, kernel_forward, residuals, dy):
  x, w = residuals
  (kh, kw), ((top, bottom), (left, right)) = w.shape[:2], pads
  flipped = ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right))
  return _forward(dy, w[::-1, ::-1].swapaxes(2, 3), flipped, kernel_forward), _weight_grad(x, dy, pads)


conv_nhwc.defvjp(_conv_fwd, _conv_bwd)


def _call(target: str, shape: tuple[int, ...], pads, *operands) -> jax.Array:
  if not build.load():
    raise RuntimeError("cnnjax's CPU kernels could not be built (see the warning); use lax.conv_general_dilated")
  (top, _), (left, _) = pads
  out = jax.ShapeDtypeStruct(shape, operands[0].dtype)
  return jax.ffi.ffi_call(target, out)(*operands, pad_top=np.int64(top), pad_left=np.int64(left))


def _slide(x: jax.Array, pads, window: tuple[int, ...]) -> tuple[int, int]:
  """Positions of `window` (height, width) along the padded input: the output size for a kernel, and back."""
  return tuple(x.shape[1 + i] + sum(pads[i]) - window[i] + 1 for i in range(2))


def _local_conv(x, w, pads):
  return _call("cnnjax_conv_nhwc", (x.shape[0], *_slide(x, pads, w.shape), w.shape[3]), pads, x, w)


def _local_weight_grad(x, dy, pads):
  return _call("cnnjax_conv_nhwc_weight_grad", (*_slide(x, pads, dy.shape[1:3]), x.shape[3], dy.shape[3]), pads,
               x, dy)


def _batch_axes(arg_shapes):
  """The mesh axes that split the batch of the first operand (None: not split), as partition specs use them."""
  sharding = arg_shapes[0].sharding
  spec = sharding.spec if isinstance(sharding, NamedSharding) else ()
  return spec[0] if len(spec) else None


def _partition_conv(pads, mesh, arg_shapes, result_shape):
  del result_shape
  batch = _batch_axes(arg_shapes)
  split, whole = NamedSharding(mesh, P(batch)), NamedSharding(mesh, P())
  return mesh, lambda x, w: _local_conv(x, w, pads), split, (split, whole)


def _partition_weight_grad(pads, mesh, arg_shapes, result_shape):
  del result_shape
  batch = _batch_axes(arg_shapes)
  split, whole = NamedSharding(mesh, P(batch)), NamedSharding(mesh, P())

  def lower(x, dy):
    dw = _local_weight_grad(x, dy, pads)
    return dw if batch is None else lax.psum(dw, batch)

  return mesh, lower, whole, (split, split)


def _infer_conv(pads, mesh, arg_shapes, result_shape):
  del pads, result_shape
  return NamedSharding(mesh, P(_batch_axes(arg_shapes)))


def _infer_weight_grad(pads, mesh, arg_shapes, result_shape):
  del pads, arg_shapes, result_shape
  return NamedSharding(mesh, P())


_conv = custom_partitioning(_local_conv, static_argnums=(2,))
_conv.def_partition(_partition_conv, infer_sharding_from_operands=_infer_conv,
                    sharding_rule="n h w c, a b c d -> n i j d", need_replication_factors=tuple("hwcabdij"))
_weight_grad = custom_partitioning(_local_weight_grad, static_argnums=(2,))
_weight_grad.def_partition(_partition_weight_grad, infer_sharding_from_operands=_infer_weight_grad,
                           sharding_rule="n h w c, n i j d -> a b c d", reduction_factors=("n",),
                           need_replication_factors=tuple("hwcijd"))
