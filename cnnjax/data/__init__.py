"""Datasets (embedded and TFDS catalog), host input pipeline and jit-able augmentation."""

from cnnjax.data import augment, pipeline, sources
from cnnjax.data.sources import info, load
