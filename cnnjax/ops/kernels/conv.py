"""2D convolution, NHWC float32, on this folder's CPU kernels: values, gradients, batch sharding.

`conv_nhwc(x, w, pads, stride)` equals `lax.conv_general_dilated(x, w,
(stride, stride), pads, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))`. Its
gradient is two more kernel calls: the input gradient is the same convolution
of the output gradient with the kernel flipped and its channel axes swapped
(flipped as the kernel is packed; XLA copies the kernel into that layout on
every call), and the weight gradient sums input times output gradient over
pixels straight from the NHWC arrays (XLA:CPU first transposes both, ~40% of
its time for ResNet-20). Under a batch-sharded `jit`, each device runs the
kernels on its own shard; the weight gradient is then summed over the devices.
Channel counts must be multiples of `build.LANES`; where XLA's own op is the faster
one (BUILD.md), `conv_nhwc` uses it instead.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
import numpy as np

from cnnjax.ops.kernels import build, sharding

MAX_CHANNELS = 512  # channel counts the kernels are measured on (BUILD.md)
MIN_WIDTH = 8  # narrower outputs run faster on XLA's convolution (BUILD.md)
MAX_WEIGHT_GRAD_CHANNELS = 256  # with more, XLA's weight gradient is the faster one (BUILD.md)


def supports(x: jax.Array, w: jax.Array, pads, stride: int = 1) -> bool:
  """Whether `conv_nhwc(x, w, pads, stride)` applies and pays: float32, channels in multiples of `build.LANES` up
  to `MAX_CHANNELS`, pads within the kernel, an output at least `MIN_WIDTH` wide."""
  channels = (x.shape[-1], w.shape[3])
  return (x.ndim == 4 and x.dtype == w.dtype == np.float32 and all(c % build.LANES == 0 for c in channels)
          and max(channels) <= MAX_CHANNELS and all(0 <= p < k for k, side in zip(w.shape[:2], pads) for p in side)
          and stride >= 1 and _output_size(x, w.shape[:2], pads, stride)[1] >= MIN_WIDTH)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_nhwc(x: jax.Array, w: jax.Array, pads: tuple[tuple[int, int], tuple[int, int]], stride: int = 1
              ) -> jax.Array:
  """NHWC `x` * HWIO `w`, `pads` = ((top, bottom), (left, right)), the same `stride` along both axes (see
  `supports`).

  The weight gradient of layers with more than `MAX_WEIGHT_GRAD_CHANNELS` channels is XLA's, and so is the input
  gradient of a strided layer (XLA skips the zeros of its dilated output gradient).
  """
  return _conv(x, w, pads, stride, False)


def _conv_fwd(x, w, pads, stride):
  return _conv(x, w, pads, stride, False), (x, w)


def _conv_bwd(pads, stride, residuals, dy):
  x, w = residuals
  if max(w.shape[2:]) <= MAX_WEIGHT_GRAD_CHANNELS:
    dw = _weight_grad(x, dy, pads, stride, w.shape[:2])
  else:
    dw = jax.vjp(lambda w: _xla_conv(x, w, pads, stride), w)[1](dy)[0]
  if stride > 1:
    return jax.vjp(lambda x: _xla_conv(x, w, pads, stride), x)[1](dy)[0], dw
  (kh, kw), ((top, bottom), (left, right)) = w.shape[:2], pads
  flipped = ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right))
  return _conv(dy, w, flipped, 1, True), dw


conv_nhwc.defvjp(_conv_fwd, _conv_bwd)


def _xla_conv(x, w, pads, stride):
  return lax.conv_general_dilated(x, w, (stride, stride), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _output_size(x: jax.Array, kernel_hw: tuple[int, ...], pads, stride: int) -> tuple[int, int]:
  return tuple((x.shape[1 + i] + sum(pads[i]) - kernel_hw[i]) // stride + 1 for i in range(2))


def _call(target: str, shape: tuple[int, ...], pads, stride, *operands, fallback, **attributes) -> jax.Array:
  (top, _), (left, _) = pads
  return build.call(target, jax.ShapeDtypeStruct(shape, operands[0].dtype), *operands, fallback=fallback,
                    pad_top=np.int64(top), pad_left=np.int64(left), stride=np.int64(stride), **attributes)


def _local_conv(x, w, pads, stride, flip):
  shape = (x.shape[0], *_output_size(x, w.shape[:2], pads, stride), w.shape[2 if flip else 3])
  return _call("cnnjax_conv_nhwc", shape, pads, stride, x, w, flip=flip,
               fallback=functools.partial(_xla_flipped_conv if flip else _xla_conv, pads=pads, stride=stride))


def _local_weight_grad(x, dy, pads, stride, kernel_hw):
  shape = (*kernel_hw, x.shape[3], dy.shape[3])
  return _call("cnnjax_conv_nhwc_weight_grad", shape, pads, stride, x, dy,
               fallback=functools.partial(_xla_weight_grad, pads=pads, stride=stride, shape=shape))


def _xla_flipped_conv(x, w, pads, stride):
  """`x` * `w` flipped in space, its channel axes swapped: the kernel's `flip`."""
  return _xla_conv(x, w[::-1, ::-1].swapaxes(2, 3), pads, stride)


def _xla_weight_grad(x, dy, pads, stride, shape):
  return jax.vjp(lambda w: _xla_conv(x, w, pads, stride), jnp.zeros(shape, x.dtype))[1](dy)[0]


def _partition_conv(pads, stride, flip, mesh, arg_shapes, result_shape):
  del result_shape
  split = sharding.batch_split(mesh, arg_shapes)
  return mesh, lambda x, w: _local_conv(x, w, pads, stride, flip), split, (split, sharding.replicated(mesh))


def _partition_weight_grad(pads, stride, kernel_hw, mesh, arg_shapes, result_shape):
  del result_shape
  local = lambda x, dy: _local_weight_grad(x, dy, pads, stride, kernel_hw)
  return sharding.partition_batch_sum(local, mesh, arg_shapes)


def _infer_conv(pads, stride, flip, mesh, arg_shapes, result_shape):
  del pads, stride, flip, result_shape
  return sharding.batch_split(mesh, arg_shapes)


def _infer_weight_grad(pads, stride, kernel_hw, mesh, arg_shapes, result_shape):
  del pads, stride, kernel_hw, arg_shapes, result_shape
  return sharding.replicated(mesh)


def _conv_rule(pads, stride, flip, mesh, operand_types, result_types):
  del pads, stride, mesh, operand_types, result_types
  kernel = "a b d c" if flip else "a b c d"
  return f"n h w c, {kernel} -> n i j d", {"need_replication_factors": tuple("hwcabdij")}


_conv = custom_partitioning(_local_conv, static_argnums=(2, 3, 4))
_conv.def_partition(_partition_conv, infer_sharding_from_operands=_infer_conv, sharding_rule=_conv_rule)
_weight_grad = custom_partitioning(_local_weight_grad, static_argnums=(2, 3, 4))
_weight_grad.def_partition(_partition_weight_grad, infer_sharding_from_operands=_infer_weight_grad,
                           sharding_rule="n h w c, n i j d -> a b c d", reduction_factors=("n",),
                           need_replication_factors=tuple("hwcijd"))
