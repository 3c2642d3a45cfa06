"""Executes every notebook in `notebooks/` at its small setting; a cell that raises fails the test.

How the small setting is chosen: the test sets the environment variable
`CNNJAX_NOTEBOOK_SMALL=1` for the kernel, and each notebook's first code cell reads
it (`SMALL = os.environ.get("CNNJAX_NOTEBOOK_SMALL") == "1"`) to shrink models,
images and step counts. Run by hand (no variable) a notebook uses its full setting.

The kernel: a `python3` kernelspec pointing at `sys.executable` is written into a
temporary directory put first on `JUPYTER_PATH`, so the notebooks run in this
interpreter (this venv) even where no user kernelspec exists (a fresh CI venv).
Notebooks run with cwd and TMPDIR in the test's tmp_path and the Agg matplotlib backend;
300 s per notebook at most. Independent tests, so `pytest -n 2` spreads them.
"""

import contextlib
import json
import os
import pathlib
import signal
import sys
import threading

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 300  # per notebook


@contextlib.contextmanager
def deadline(seconds: int):
  """Raises TimeoutError in the main thread after `seconds` (no-op where SIGALRM is unavailable)."""
  if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
    yield
    return

  def expire(signum, frame):
    raise TimeoutError(f"notebook still running after {seconds} s")

  previous = signal.signal(signal.SIGALRM, expire)
  signal.alarm(seconds)
  try:
    yield
  finally:
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
  spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
  spec_dir.mkdir(parents=True)
  spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
          "display_name": "Python 3 (cnnjax tests)", "language": "python"}
  (spec_dir / "kernel.json").write_text(json.dumps(spec))
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
  monkeypatch.setenv("CNNJAX_NOTEBOOK_SMALL", "1")
  monkeypatch.setenv("MPLBACKEND", "Agg")
  monkeypatch.setenv("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "cpu"))
  (tmp_path / "tmp").mkdir()
  monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # the notebooks' tempfile workdirs go away with tmp_path
  return tmp_path


def test_every_notebook_is_stored_without_outputs():
  assert len(NOTEBOOKS) == 8, [p.name for p in NOTEBOOKS]
  for path in NOTEBOOKS:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "CNNJAX_NOTEBOOK_SMALL" in code[0].source, f"{path.name}: first code cell must read the small setting"
    assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has stored outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_at_small_setting(path, kernel_env):
  nb = nbformat.read(path, as_version=4)
  workdir = kernel_env / "run"
  workdir.mkdir()
  client = NotebookClient(nb, kernel_name="python3", timeout=TIMEOUT_S, startup_timeout=120,
                          resources={"metadata": {"path": str(workdir)}})
  with deadline(TIMEOUT_S):
    client.execute()
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
  assert not errors
