"""Argument normalisation shared by the JAX conv and pooling ops."""

from collections.abc import Sequence
import numbers

from jax import lax

Padding = str | int | Sequence[tuple[int, int]]


def is_int(value) -> bool:
  """True for Python and NumPy integers, False for bools."""
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def spatial_tuple(value: int | Sequence[int], nd: int, name: str) -> tuple[int, ...]:
  """An int or a length-`nd` sequence of positive ints as a tuple of `nd` ints."""
  try:
    values = (value,) * nd if is_int(value) else tuple(value)
  except TypeError:  # neither an int nor a sequence
    values = ()
  if len(values) != nd or not all(is_int(v) and v > 0 for v in values):
    raise ValueError(f"{name}={value!r}: expected a positive int or {nd} positive ints "
                     f"(one per spatial dim)")
  return tuple(int(v) for v in values)


def resolve_padding(padding: Padding, spatial: Sequence[int], window: Sequence[int],
                    strides: Sequence[int]) -> list[tuple[int, int]]:
  """Explicit (lo, hi) pads per spatial dim from 'valid', 'same', an int or pairs.

  'same' follows lax/Keras: output size ceil(n / s), the extra pad (if odd) goes high.
  """
  nd = len(spatial)
  if isinstance(padding, str):
    kind = padding.upper()
    if kind not in ("VALID", "SAME"):
      raise ValueError(f"padding={padding!r}: expected 'valid', 'same', an int or "
                       f"{nd} (lo, hi) pairs")
    pads = lax.padtype_to_pads(tuple(spatial), tuple(window), tuple(strides), kind)
    return [(int(lo), int(hi)) for lo, hi in pads]
  if is_int(padding):
    pads = [(padding, padding)] * nd
  else:
    try:
      pads = [tuple(pair) for pair in padding]
    except TypeError:
      pads = []
    if len(pads) != nd or not all(len(p) == 2 and all(map(is_int, p)) for p in pads):
      raise ValueError(f"padding={padding!r}: expected 'valid', 'same', an int or "
                       f"{nd} (lo, hi) pairs")
  if any(lo < 0 or hi < 0 for lo, hi in pads):
    raise ValueError(f"padding={padding!r}: expected non-negative pads")
  return [(int(lo), int(hi)) for lo, hi in pads]


def check_fits(spatial: Sequence[int], window: Sequence[int], pads: Sequence[tuple[int, int]],
               name: str = "window_shape") -> None:
  """Raise if a window is larger than the padded input along some dim."""
  for n, f, (lo, hi) in zip(spatial, window, pads):
    if f > n + lo + hi:
      raise ValueError(f"{name}={tuple(window)}: window {f} is larger than the padded "
                       f"input {n + lo + hi} (spatial size {n}, pads {(lo, hi)})")
