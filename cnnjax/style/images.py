"""Images for style transfer: bundled `skimage.data` names or any file Pillow reads."""

import os

import numpy as np
from PIL import Image, UnidentifiedImageError
import skimage.data
from skimage import color, transform

# Bundled with scikit-image (no download): content photos and style textures.
BUNDLED = ("astronaut", "chelsea", "coffee", "immunohistochemistry", "brick", "grass", "gravel", "rocket")


def load_image(name_or_path: str, size: int | tuple[int, int] | None = None) -> np.ndarray:
  """`[H, W, 3]` float32 RGB in [0, 1] from a bundled name or an image path.

  Args:
    name_or_path: one of `BUNDLED` or a path to a PNG/JPEG/... file.
    size: resize to `(H, W)`, or a square side; None keeps the original size.
  """
  if name_or_path in BUNDLED:
    img = getattr(skimage.data, name_or_path)()
  else:
    if not os.path.isfile(name_or_path):
      raise ValueError(f"image {name_or_path!r}: no such file, and not a bundled image "
                       f"(expected a path or one of {BUNDLED})")
    try:
      with Image.open(name_or_path) as f:
        img = np.asarray(f.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
      raise ValueError(f"image {name_or_path!r}: not a readable image file ({e})") from e
  img = np.asarray(img)
  if img.ndim == 2:
    img = color.gray2rgb(img)
  img = img[..., :3]
  img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
  if size is not None:
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or min(hw) < 1:
      raise ValueError(f"size={size!r}: expected a positive int or (H, W)")
    img = transform.resize(img, hw, anti_aliasing=True, preserve_range=True)
  return np.clip(img, 0.0, 1.0).astype(np.float32)


def save_image(image: np.ndarray, path: str) -> None:
  """Writes a [0, 1] RGB image as 8-bit PNG."""
  Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
