"""Compiles a shared library from the package's C++ sources for this host, once, cached by content.

A neutral helper of the package's compiled parts, which import it; it imports
none of them. The system C++ compiler (`$CXX`, else `g++`) builds the library; the result is cached under `$CNNJAX_KERNEL_CACHE` (default
`~/.cache/cnnjax/kernels`) by a hash of the sources, the flags, the compiler,
the host CPU and whatever else the caller names. Concurrent builders each
rename a whole file into place, so processes racing on the first build are safe.
"""

import ctypes
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile
from typing import Callable, Sequence
import warnings


def build_library(name: str, sources: Sequence[pathlib.Path], flags: Sequence[str],
                  depends_on: Sequence[pathlib.Path | str] = ()) -> pathlib.Path:
  """The path of `name`-<hash>.so built from `sources` with `flags` (placed before the sources; `-l` libraries
  after). `depends_on`: headers the sources include, or strings (versions) the build depends on.

  Raises OSError where there is no compiler, subprocess.CalledProcessError (with the compiler's stderr) where the
  build fails.
  """
  compiler = os.environ.get("CXX", "g++")
  if shutil.which(compiler) is None:
    raise OSError(f"no C++ compiler {compiler!r} on PATH")
  compile_flags = [f for f in flags if not f.startswith("-l")]
  libraries = [f for f in flags if f.startswith("-l")]
  key = hashlib.sha256()
  for part in [*(pathlib.Path(s).read_bytes() for s in sources), " ".join(flags).encode(), compiler.encode(),
               _cpu_identity().encode(),
               *(d.read_bytes() if isinstance(d, pathlib.Path) else d.encode() for d in depends_on)]:
    key.update(part)
  cache = pathlib.Path(os.environ.get("CNNJAX_KERNEL_CACHE", pathlib.Path.home() / ".cache" / "cnnjax" / "kernels"))
  library = cache / f"{name}-{key.hexdigest()[:16]}.so"
  if library.exists():
    return library
  cache.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=cache) as scratch:
    built = pathlib.Path(scratch) / library.name
    subprocess.run([compiler, *compile_flags, *map(str, sources), "-o", str(built), *libraries],
                   check=True, capture_output=True, text=True)
    os.replace(built, library)
  return library


def load_library(build: Callable[[], pathlib.Path], *, switch: str, unavailable: str) -> ctypes.CDLL | None:
  """The library `build()` returns, loaded with ctypes. None where the environment variable `switch` is "0"; None
  with one warning (`unavailable`, then the reason) where it cannot be built or loaded."""
  if os.environ.get(switch, "1") == "0":
    return None
  try:
    return ctypes.CDLL(str(build()))
  except (OSError, subprocess.CalledProcessError) as error:
    warnings.warn(f"cnnjax: {unavailable}:\n{getattr(error, 'stderr', None) or error}")
    return None


def _cpu_identity() -> str:
  """The host's CPU model and instruction-set flags (what `-march=native` compiles for)."""
  try:
    lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
  except OSError:
    return platform.processor() or platform.machine()
  return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))
