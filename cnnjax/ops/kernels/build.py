"""Compiles the C++ kernels of this folder for the host CPU, once, and registers them with XLA:CPU.

The shared library is built by `cnnjax.native` against the XLA FFI headers that
ship with jaxlib, for this machine's instruction set (`-march=native`), cached
by the sources, flags, jaxlib and the CPU. The build takes a few seconds the
first time.

It happens when a program is lowered for the CPU, never while tracing: `call`
stages out a kernel call with a plain-JAX fallback, and only the CPU lowering
rule builds the library, so a GPU or TPU program (and any trace) runs no
compiler and warns of nothing. Where there is no compiler, or `CNNJAX_KERNELS=0`,
`load()` returns False and the CPU program gets the fallback (XLA's own ops).
"""

import functools
import pathlib
from typing import Callable

import jax
from jax.extend import core
from jax.interpreters import mlir
import jaxlib

from cnnjax import native

SOURCES = ("conv_nhwc.cc", "channel_sums.cc", "max_pool_grad.cc")
HEADERS = ("common.h",)
TARGETS = {"cnnjax_conv_nhwc": "CnnjaxConvNhwc", "cnnjax_conv_nhwc_weight_grad": "CnnjaxConvNhwcWeightGrad",
           "cnnjax_channel_sums": "CnnjaxChannelSums", "cnnjax_max_pool_grad": "CnnjaxMaxPoolGrad"}
LANES = 16  # channel counts the kernels take are multiples of this (kChannelBlock in common.h)
FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w")


@functools.cache
def load() -> bool:
  """Builds (if not cached) and registers the kernels for the CPU platform; False where they cannot be had."""
  library = native.load_library(lambda: _build(), switch="CNNJAX_KERNELS",
                                unavailable="CPU kernels unavailable, XLA's own ops are used instead")
  if library is None:
    return False
  for target, symbol in TARGETS.items():
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")
  return True


def call(target: str, result: jax.ShapeDtypeStruct, *operands: jax.Array, fallback: Callable[..., jax.Array],
         **attributes) -> jax.Array:
  """`jax.ffi.ffi_call` of one of `TARGETS` where lowered for a CPU that has the kernels, else `fallback(*operands)`
  (the same result in plain JAX)."""
  return _kernel_call_p.bind(*operands, target=target, result=result, fallback=fallback,
                             attributes=tuple(attributes.items()))


_kernel_call_p = core.Primitive("cnnjax_cpu_kernel")
_kernel_call_p.def_abstract_eval(lambda *_, result, **__: jax.core.ShapedArray(result.shape, result.dtype))
_kernel_call_p.def_impl(lambda *operands, **params: jax.jit(functools.partial(_kernel_call_p.bind, **params))(
    *operands))  # eagerly: as a one-op program


def _lower(ctx, *operands, target, result, fallback, attributes, on_cpu: bool):
  """The kernel call on a CPU with the kernels (building them here, the first time), the fallback elsewhere."""
  if on_cpu and load():
    fallback = lambda *operands: jax.ffi.ffi_call(target, result)(*operands, **dict(attributes))
  return mlir.lower_fun(fallback, multiple_results=False)(ctx, *operands)


mlir.register_lowering(_kernel_call_p, functools.partial(_lower, on_cpu=False))
mlir.register_lowering(_kernel_call_p, functools.partial(_lower, on_cpu=True), platform="cpu")


def _build() -> pathlib.Path:
  here = pathlib.Path(__file__).parent
  return native.build_library("kernels", [here / name for name in SOURCES],
                              [*FLAGS, f"-I{jax.ffi.include_dir()}"],
                              depends_on=[*(here / name for name in HEADERS), jaxlib.__version__])
