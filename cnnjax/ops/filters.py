"""Classic 3x3 edge-detection filters and applying one to an image."""

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.ops.arguments import Padding
from cnnjax.ops.conv import conv

# Vertical-edge orientation: columns weigh left minus right, so a light-to-dark step
# (bright on the left) gives a positive response.
_VERTICAL = {
    "vertical": [[1, 0, -1], [1, 0, -1], [1, 0, -1]],
    "sobel": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    "scharr": [[3, 0, -3], [10, 0, -10], [3, 0, -3]],
}
EDGE_FILTERS = ("vertical", "horizontal", "sobel", "scharr")
# ITU-R BT.601 luma weights (as Pillow's convert('L')).
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def edge_filter(name: str) -> np.ndarray:
  """A 3x3 float32 edge filter: 'vertical', 'horizontal', 'sobel' or 'scharr'.

  'vertical', 'sobel' and 'scharr' detect vertical edges (positive where the image
  goes from light on the left to dark on the right); transpose one to detect
  horizontal edges. 'horizontal' is the transpose of 'vertical' (positive where
  light is above dark).
  """
  if name == "horizontal":
    return edge_filter("vertical").T.copy()
  if name not in _VERTICAL:
    raise ValueError(f"name={name!r}: expected one of {EDGE_FILTERS}")
  return np.array(_VERTICAL[name], np.float32)


def apply_filter(image: jax.Array | np.ndarray, kernel: jax.Array | np.ndarray, *,
                 padding: Padding = "valid") -> jax.Array:
  """Cross-correlates a grayscale or RGB image with a 2-D kernel; returns (H', W') float32.

  Args:
    image: (H, W) grayscale or (H, W, 3) RGB; RGB is first converted to luminance
      0.299 R + 0.587 G + 0.114 B (ITU-R BT.601). Pixel values are used as given
      (uint8 stays on the 0-255 scale).
    kernel: (f_H, f_W) filter, e.g. `edge_filter('vertical')`; not flipped.
    padding: as `conv`: 'valid', 'same', an int or (lo, hi) pairs.
  """
  image = jnp.asarray(image, jnp.float32)
  kernel = jnp.asarray(kernel, jnp.float32)
  if kernel.ndim != 2:
    raise ValueError(f"kernel.shape={tuple(kernel.shape)}: expected a 2-D (f_H, f_W) filter")
  if image.ndim == 3 and image.shape[-1] == 3:
    image = image @ _LUMA
  elif image.ndim != 2:
    raise ValueError(f"image.shape={tuple(image.shape)}: expected (H, W) grayscale or "
                     f"(H, W, 3) RGB")
  return conv(image[None, :, :, None], kernel[:, :, None, None], padding=padding)[0, :, :, 0]
