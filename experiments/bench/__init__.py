"""Benchmark internals: the PyTorch twins (torch imported only here) and the per-process worker."""
