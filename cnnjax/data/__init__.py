"""Datasets (embedded and TFDS catalog), host input pipeline and jit-able augmentation."""

from cnnjax.data import sources
from cnnjax.data.sources import info, load
