"""Datasets (embedded and TFDS catalog), host input pipeline and jit-able augmentation.

Submodules: `sources` (`load`, `info`, `labels`), `pipeline` (grain: `batches`, `eval_batches`,
`prefetch_to_mesh`), `jpeg` (host `InceptionCrop`, `CentreCrop` at a reduced decode scale),
`host_input` (host transforms by config, sampled channel statistics), `augment` (ops, `build`, `normalize`, `ten_crop`),
`builders` (the embedded datasets). They load on first use, so preparing a
dataset does not import JAX.
"""

import importlib

_SUBMODULES = ("augment", "builders", "host_input", "jpeg", "pipeline", "sources")
_FROM_SOURCES = ("load", "info")


def __getattr__(name: str):
  if name in _SUBMODULES:
    return importlib.import_module(f"{__name__}.{name}")
  if name in _FROM_SOURCES:
    return getattr(importlib.import_module(f"{__name__}.sources"), name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
