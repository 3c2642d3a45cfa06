"""cnnjax: convolutional networks in JAX, from convolution arithmetic to YOLO and style transfer."""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = ("ops", "models", "data", "train", "transfer", "detection", "embedding", "style", "viz")


def __getattr__(name: str):
  # Subpackages load on first use so `import cnnjax` stays cheap (TFDS alone takes seconds).
  if name in _SUBPACKAGES:
    return importlib.import_module(f"cnnjax.{name}")
  raise AttributeError(f"module 'cnnjax' has no attribute {name!r}")
