"""Per-channel sums `[sum a, sum a*b]` of two float32 arrays on this folder's CPU kernel, one pass over both.

BatchNorm's batch statistics are `channel_sums(x, x)`, their gradient
`channel_sums(dy, x)`; XLA:CPU reads the input once for each sum. Under a
batch-sharded `jit`, each device sums its shard and the sums are added over
the devices.
"""

import jax
import jax.numpy as jnp
from jax.experimental.custom_partitioning import custom_partitioning
import numpy as np

from cnnjax.ops.kernels import build, sharding


def supports(a: jax.Array) -> bool:
  """Whether `channel_sums` takes `a`: float32 with channels (last axis) in multiples of `build.LANES`."""
  return a.ndim >= 1 and a.dtype == np.float32 and a.shape[-1] % build.LANES == 0


def channel_sums(a: jax.Array, b: jax.Array) -> jax.Array:
  """`[sum a, sum a*b]` over all axes of `a` and `b` (one shape, see `supports`) but the last: [2, C]."""
  return _sums(a, b)


def _local_sums(a, b):
  return build.call("cnnjax_channel_sums", jax.ShapeDtypeStruct((2, a.shape[-1]), a.dtype), a, b,
                    fallback=_xla_sums)


def _xla_sums(a, b):
  axes = tuple(range(a.ndim - 1))
  return jnp.stack([jnp.sum(a, axes), jnp.sum(a * b, axes)])


def _partition(mesh, arg_shapes, result_shape):
  del result_shape
  return sharding.partition_batch_sum(_local_sums, mesh, arg_shapes)


def _infer(mesh, arg_shapes, result_shape):
  del arg_shapes, result_shape
  return sharding.replicated(mesh)


def _rule(mesh, operand_types, result_types):
  del mesh, result_types
  rows = " ".join(f"r{i}" for i in range(len(operand_types[0].shape) - 1))
  return f"{rows} c, {rows} c -> s c", {"reduction_factors": tuple(rows.split()), "need_replication_factors": ("c",)}


_sums = custom_partitioning(_local_sums)
_sums.def_partition(_partition, infer_sharding_from_operands=_infer, sharding_rule=_rule)
