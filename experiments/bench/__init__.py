"""The benchmark's parts: workloads and timing, the PyTorch twins (torch imported only there), the worker."""
