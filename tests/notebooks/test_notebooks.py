"""The notebooks: stored with the outputs of a full-setting run of their current code, and runnable at the small
setting (`experiments.notebooks.execute` with `CNNJAX_NOTEBOOK_SMALL=1`; a cell that raises fails the test).

300 s per notebook at most at the small setting. Independent tests, so `pytest -n 2` spreads them.
"""

import contextlib
import os
import signal
import threading

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from experiments import notebooks

NOTEBOOKS = notebooks.notebook_paths()
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


def test_notebook_paths_names_unknown_notebooks():
  assert [p.stem for p in notebooks.notebook_paths(["03_resnets"])] == ["03_resnets"]
  with pytest.raises(ValueError, match="no notebook.*'03_resnet'.*there are"):
    notebooks.notebook_paths(["03_resnet"])


def test_every_notebook_is_stored_with_the_outputs_of_its_current_code_at_full_setting():
  assert len(NOTEBOOKS) == 8, [p.name for p in NOTEBOOKS]
  for path in NOTEBOOKS:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert notebooks.SMALL_VARIABLE in code[0].source, f"{path.name}: first code cell must read the small setting"
    stored = nb.metadata.get("cnnjax", {})
    assert stored.get("setting") == "full", f"{path.name}: run `python -m experiments.notebooks --names={path.stem}`"
    assert stored["code_digest"] == notebooks.code_digest(nb), (
        f"{path.name}: its code changed after its outputs were stored; "
        f"run `python -m experiments.notebooks --names={path.stem}`")
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), f"{path.name}: not run in order"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} stores an error"


def test_code_digest_changes_with_code_not_with_outputs_or_markdown():
  nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# a"), nbformat.v4.new_code_cell("x = 1")])
  digest = notebooks.code_digest(nb)
  nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="1")]
  nb.cells[0].source = "# b"
  assert notebooks.code_digest(nb) == digest
  nb.cells[1].source = "x = 2"
  assert notebooks.code_digest(nb) != digest


def test_execute_in_place_stores_outputs_of_the_full_setting_and_restores_the_environment(tmp_path, monkeypatch):
  monkeypatch.setenv(notebooks.SMALL_VARIABLE, "1")  # as in a test run: the full setting must not see it
  environ = dict(os.environ)
  path = tmp_path / "probe.ipynb"
  nbformat.write(nbformat.v4.new_notebook(cells=[
      nbformat.v4.new_markdown_cell("# probe"),
      nbformat.v4.new_code_cell("import os, tempfile\nprint(os.environ.get('CNNJAX_NOTEBOOK_SMALL'))"),
      nbformat.v4.new_code_cell("scratch = os.path.dirname(os.getcwd())  # the run's own temporary directory\n"
                                "print(os.path.basename(scratch).startswith('probe_'), "
                                "tempfile.gettempdir().startswith(scratch), os.environ['MPLBACKEND'])")]),
      path)
  seconds = notebooks.execute_in_place(path, timeout=60)
  nb = nbformat.read(path, as_version=4)
  assert [c.outputs[0].text for c in nb.cells[1:]] == ["None\n", "True True Agg\n"]
  assert [c.execution_count for c in nb.cells[1:]] == [1, 2]
  stored = nb.metadata["cnnjax"]
  assert stored["setting"] == "full" and stored["code_digest"] == notebooks.code_digest(nb)
  assert 0 < stored["seconds"] == round(seconds, 1)
  assert dict(os.environ) == environ


def test_a_raising_cell_is_named_and_the_notebook_left_as_it_was(tmp_path):
  path = tmp_path / "broken.ipynb"
  nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise ValueError('bad cell')")]), path)
  before = path.read_text()
  with pytest.raises(CellExecutionError, match="bad cell"):
    notebooks.execute_in_place(path, timeout=60)
  assert path.read_text() == before


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_at_small_setting(path, tmp_path):
  with notebooks.kernel_environment(tmp_path, small=True), deadline(TIMEOUT_S):
    nb = notebooks.execute(path, tmp_path, timeout=TIMEOUT_S)
  assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
