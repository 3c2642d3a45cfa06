"""XLA:CPU kernels in C++ (XLA FFI custom calls), built for the host on first use; see `build`, `conv` and
`channel_sums`."""

from cnnjax.ops.kernels.build import load
from cnnjax.ops.kernels.channel_sums import channel_sums, supports as supports_channel_sums
from cnnjax.ops.kernels.conv import conv_nhwc, supports

__all__ = ["channel_sums", "conv_nhwc", "load", "supports", "supports_channel_sums"]
