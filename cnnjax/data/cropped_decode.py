"""libjpeg-turbo's cropped, scaled JPEG decoding (`cropped_decode.cc`), compiled for the host on first use.

TensorFlow's `decode_and_crop_jpeg` decodes only the crop window of a JPEG;
OpenCV and Pillow decode the whole image. This binding does what TensorFlow
does, through libjpeg-turbo's own API (`jpeg_skip_scanlines`,
`jpeg_crop_scanline`). It is built by `cnnjax.native` against the system's
libjpeg-turbo (`jpeglib.h` and `libjpeg.so`: Debian's libjpeg62-turbo-dev,
Ubuntu's libjpeg-turbo8-dev). Where that cannot be had, or with
`CNNJAX_CROPPED_DECODE=0`, `load()` returns None and `cnnjax.data.jpeg`
decodes the whole image with OpenCV instead.
"""

import ctypes
import functools
import pathlib

import numpy as np

from cnnjax import native

SOURCE = pathlib.Path(__file__).parent / "cropped_decode.cc"
FLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC", "-w", "-ljpeg")
_MESSAGE_SIZE = 256


@functools.cache
def load() -> ctypes.CDLL | None:
  """The compiled decoder (built once, cached), or None where it cannot be built or is switched off."""
  library = native.load_library(lambda: native.build_library("cropped_decode", [SOURCE], FLAGS),
                                switch="CNNJAX_CROPPED_DECODE",
                                unavailable="the cropped JPEG decoder could not be built (it needs a C++ compiler and "
                                            "libjpeg-turbo's development files); whole images are decoded with "
                                            "OpenCV instead")
  if library is None:
    return None
  decode = library.cnnjax_decode_crop
  decode.restype = ctypes.c_int
  decode.argtypes = [ctypes.c_char_p, ctypes.c_ulong, *[ctypes.c_int] * 6, ctypes.c_void_p, ctypes.c_char_p,
                     ctypes.c_int]
  return library


def decode(library: ctypes.CDLL, data: bytes, window: tuple[int, int, int, int], denom: int,
           channels: int) -> np.ndarray:
  """Pixels [top, bottom) x [left, right) of the JPEG `data` decoded at a scale of 1/`denom` (1, 2, 4 or 8), as
  uint8 (rows, columns, `channels`); `window` is (left, top, right, bottom) in pixels of the scaled image.

  Raises ValueError with libjpeg's reason where the data cannot be decoded (or the window is outside the image).
  """
  left, top, right, bottom = window
  out = np.empty((bottom - top, right - left, channels), np.uint8)
  message = ctypes.create_string_buffer(_MESSAGE_SIZE)
  if library.cnnjax_decode_crop(data, len(data), denom, channels, left, top, right - left, bottom - top,
                                out.ctypes.data, message, _MESSAGE_SIZE):
    raise ValueError(f"libjpeg: {message.value.decode(errors='replace')}")
  return out
