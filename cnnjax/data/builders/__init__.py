"""TFDS builders of the embedded datasets, one module per dataset.

Convention: the module name is the dataset name used in configs and in
`cnnjax.data.sources.load(name, ...)` (`digits`, `shapes`, `synthetic_faces`).
Each module defines one `tfds.core.GeneratorBasedBuilder` subclass, declared
with `skip_registration=True` (so no name clashes with the TFDS catalog), and
exposes it as the module-level name `Builder`, e.g. `Builder = Digits`.
Generation is offline, deterministic (fixed seed) and takes a few seconds.
Records are dicts of numpy arrays: uint8 HWC images under `'image'`, the class
under `'label'`. `sources.load` discovers the modules with `pkgutil`, so this
file imports nothing.
"""
