"""Convolution arithmetic, NumPy reference ops, JAX conv and pooling, edge filters, FLOPs."""

from cnnjax.ops.pooling import avg_pool, max_pool

__all__ = ["avg_pool", "max_pool"]
