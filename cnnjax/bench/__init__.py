"""Benchmark building blocks: interleaved timing, peak memory, and the cnnjax workloads users run."""
