"""The native libraries' loaders: without a compiler each warns once and gives none; switched off, none silently."""

import warnings

import pytest

from cnnjax.data import cropped_decode
from cnnjax.ops.kernels import build


@pytest.mark.parametrize("load, switch, message, unavailable", [
    (build.load, "CNNJAX_KERNELS", "CPU kernels unavailable, XLA's own ops are used instead", False),
    (cropped_decode.load, "CNNJAX_CROPPED_DECODE", "cropped JPEG decoder could not be built", None),
], ids=["kernels", "cropped_decode"])
def test_without_a_compiler_it_warns_and_switched_off_it_is_silent(load, switch, message, unavailable, tmp_path,
                                                                    monkeypatch):
  monkeypatch.setenv("CNNJAX_KERNEL_CACHE", str(tmp_path))  # nothing cached: a build is attempted
  monkeypatch.setenv("CXX", "no-such-compiler")
  with pytest.warns(UserWarning, match=f"(?s){message}.*no C\\+\\+ compiler 'no-such-compiler'"):
    assert load.__wrapped__() is unavailable
  monkeypatch.setenv(switch, "0")
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert load.__wrapped__() is unavailable
