"""Convolution arithmetic, NumPy reference ops, JAX conv and pooling, edge filters, FLOPs.

Importing it keeps CPU steps' temporaries mapped (`xla_cpu.reuse_host_memory`): no set-up call for users.
"""

from cnnjax.ops.conv import conv, conv_output_size
from cnnjax.ops.flops import FlopReport, LayerCost, count_flops
from cnnjax.ops.filters import EDGE_FILTERS, apply_filter, edge_filter
from cnnjax.ops.pooling import avg_pool, max_pool
from cnnjax.ops.reference import (conv_backward_reference, conv_forward_reference,
                                  pool_backward_reference, pool_forward_reference)
from cnnjax.ops import xla_cpu as _xla_cpu

_xla_cpu.reuse_host_memory()

__all__ = [
    "EDGE_FILTERS", "FlopReport", "LayerCost", "apply_filter", "avg_pool", "conv",
    "conv_backward_reference", "conv_forward_reference", "conv_output_size", "count_flops",
    "edge_filter", "max_pool",
    "pool_backward_reference", "pool_forward_reference",
]
