"""Batch sharding of the kernels: each device runs a kernel on its own shard of the leading (batch) axis."""

from jax import lax
from jax.sharding import NamedSharding, PartitionSpec as P


def batch_axes(arg_shapes):
  """The mesh axes that split the batch of the first operand (None: not split), as partition specs use them."""
  sharding = arg_shapes[0].sharding
  spec = sharding.spec if isinstance(sharding, NamedSharding) else ()
  return spec[0] if len(spec) else None


def batch_split(mesh, arg_shapes) -> NamedSharding:
  """The sharding of the first operand's batch axis, on `mesh`."""
  return NamedSharding(mesh, P(batch_axes(arg_shapes)))


def partition_batch_sum(local, mesh, arg_shapes):
  """`custom_partitioning`'s partition of `local`, which sums over its operands' batch axis: every device sums
  its shard, then the sums are added over the devices (one all-reduce)."""
  batch = batch_axes(arg_shapes)

  def lower(*operands):
    total = local(*operands)
    return total if batch is None else lax.psum(total, batch)

  return mesh, lower, replicated(mesh), (batch_split(mesh, arg_shapes),) * len(arg_shapes)


def replicated(mesh) -> NamedSharding:
  """The sharding of a batch sum: whole on every device."""
  return NamedSharding(mesh, P())
