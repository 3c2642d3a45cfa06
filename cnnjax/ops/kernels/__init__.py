"""XLA:CPU kernels in C++ (XLA FFI custom calls), built for the host on first use; see `build` and `conv`."""

from cnnjax.ops.kernels.build import load
from cnnjax.ops.kernels.conv import conv_nhwc, supports

__all__ = ["conv_nhwc", "load", "supports"]
