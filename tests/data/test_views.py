"""Views of a source: the first records, records mapped through a function."""

import pytest

from cnnjax.data import views

SOURCE = [{"image": i, "label": i % 3} for i in range(10)]


def test_limited_keeps_the_first_records_and_bounds_indexing():
  first = views.limited(SOURCE, 4)
  assert len(first) == 4 and [r["image"] for r in first] == [0, 1, 2, 3]
  with pytest.raises(IndexError):
    first[4]
  assert views.limited(SOURCE, 0) is SOURCE and views.limited(SOURCE, 99) is SOURCE


def test_mapped_source_applies_its_function_on_read():
  mapped = views.MappedSource(SOURCE, lambda r: {**r, "image": r["image"] * 10})
  assert len(mapped) == 10 and mapped[3] == {"image": 30, "label": 0}
