"""XLA:CPU kernels in C++ (XLA FFI custom calls), built for the host when a program is first lowered for the CPU;
see `build`, `conv`, `channel_sums` and `max_pool_grad`."""

from cnnjax.ops.kernels.build import load
from cnnjax.ops.kernels.channel_sums import channel_sums, supports as supports_channel_sums
from cnnjax.ops.kernels.conv import conv_nhwc, supports
from cnnjax.ops.kernels.max_pool_grad import max_pool_grad, supports as supports_max_pool_grad

__all__ = ["channel_sums", "conv_nhwc", "load", "max_pool_grad", "supports", "supports_channel_sums",
           "supports_max_pool_grad"]
