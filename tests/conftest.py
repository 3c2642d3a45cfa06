"""Test settings: CPU only, float32 matmuls at full precision; `fresh_python` for scripts that need their own process."""

import os
import subprocess
import sys
import tempfile

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Compile time dominates the suite on the CPU, and many tests compile the same programs (the xdist workers,
# every experiment's subprocesses, the notebooks' kernels): they all share JAX's persistent compilation cache,
# keyed by the program, the compile options and the jax/jaxlib versions, so a cached program is the same program.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "cnnjax-tests-jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")


def _run_fresh_python(script: str, *args: str, **env: str) -> list[str]:
  out = subprocess.run([sys.executable, "-c", script, *args], env={**os.environ, "JAX_PLATFORMS": "cpu", **env},
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  return out.stdout.split()


@pytest.fixture
def fresh_python():
  """`fresh_python(script, *args, **env)`: the words `script` prints, run by a new CPU-only interpreter."""
  return _run_fresh_python
