"""Re-executes the notebooks in place, so the repository shows the outputs of a full-setting run.

`python -m experiments.notebooks` runs every notebook in `notebooks/` at its full setting, one after the other, and
writes each back with its outputs, its wall time and a digest of its code cells in the notebook's metadata
(`cnnjax`); `--names=03_resnets,05_detection` runs some. The tests run the same `execute` at the small setting
(`CNNJAX_NOTEBOOK_SMALL=1`, which each notebook's first code cell reads) and check that the stored outputs belong
to the code as it stands (`code_digest`).

The kernel is a `python3` kernelspec pointing at this interpreter, written into a temporary `JUPYTER_PATH`, so the
notebooks run in this environment even where no kernelspec is installed. Each notebook runs with its working
directory and TMPDIR in a fresh temporary directory and the Agg matplotlib backend.
"""

import contextlib
import datetime
import hashlib
import json
import os
import pathlib
import platform
import sys
import tempfile
import time
from typing import Iterator, Sequence

import nbformat
from absl import app, flags
from nbclient import NotebookClient

NOTEBOOKS_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
SMALL_VARIABLE = "CNNJAX_NOTEBOOK_SMALL"


def notebook_paths(names: Sequence[str] = ()) -> list[pathlib.Path]:
  """The notebooks of `notebooks/` (those whose stem is in `names`, where given), sorted."""
  paths = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
  unknown = sorted(set(names) - {p.stem for p in paths})
  if unknown:
    raise ValueError(f"no notebook(s) {unknown} in {NOTEBOOKS_DIR}; there are {[p.stem for p in paths]}")
  return [p for p in paths if not names or p.stem in names]


def code_digest(nb: nbformat.NotebookNode) -> str:
  """SHA-256 of the notebook's code cells' sources: the stored outputs are stale where it differs."""
  sources = [c.source for c in nb.cells if c.cell_type == "code"]
  return hashlib.sha256(json.dumps(sources).encode()).hexdigest()


@contextlib.contextmanager
def kernel_environment(directory: pathlib.Path, *, small: bool) -> Iterator[None]:
  """Within the block, notebook kernels start in this interpreter with the notebooks' environment: a kernelspec
  under `directory`, TMPDIR in it, the Agg backend, `CNNJAX_NOTEBOOK_SMALL=1` where `small`. Restores os.environ."""
  spec_dir = directory / "jupyter" / "kernels" / "python3"
  spec_dir.mkdir(parents=True, exist_ok=True)
  spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
          "display_name": "Python 3", "language": "python"}
  (spec_dir / "kernel.json").write_text(json.dumps(spec))
  (directory / "tmp").mkdir(exist_ok=True)
  env = {"JUPYTER_PATH": str(directory / "jupyter"), "MPLBACKEND": "Agg",
         "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"),
         "TMPDIR": str(directory / "tmp"),  # the notebooks' tempfile workdirs go away with `directory`
         "PYTHONWARNINGS": "ignore:IProgress not found",  # tqdm's text bar, without its advice to install ipywidgets
         SMALL_VARIABLE: "1" if small else None}
  saved = {key: os.environ.get(key) for key in env}
  try:
    _set_environ(env)
    yield
  finally:
    _set_environ(saved)


def _set_environ(values: dict[str, str | None]) -> None:
  """Sets each variable, unsetting those whose value is None."""
  for key, value in values.items():
    if value is None:
      os.environ.pop(key, None)
    else:
      os.environ[key] = value


def execute(path: pathlib.Path, directory: pathlib.Path, *, timeout: int) -> nbformat.NotebookNode:
  """`path` executed with cwd in `directory`, within `kernel_environment`; raises
  `nbclient.exceptions.CellExecutionError` naming the cell where one raises."""
  nb = nbformat.read(path, as_version=4)
  workdir = directory / "run"
  workdir.mkdir(exist_ok=True)
  client = NotebookClient(nb, kernel_name="python3", timeout=timeout, startup_timeout=120, coalesce_streams=True,
                          resources={"metadata": {"path": str(workdir)}})  # progress bars stored as their last line
  client.execute()
  return nb


def execute_in_place(path: pathlib.Path, *, timeout: int) -> float:
  """Runs `path` at its full setting and writes it back with its outputs; returns the wall time in seconds."""
  with tempfile.TemporaryDirectory(prefix=f"{path.stem}_") as directory:
    with kernel_environment(pathlib.Path(directory), small=False):
      start = time.perf_counter()
      nb = execute(path, pathlib.Path(directory), timeout=timeout)
      seconds = time.perf_counter() - start
  nb.metadata["cnnjax"] = {
      "setting": "full", "seconds": round(seconds, 1), "code_digest": code_digest(nb),
      "executed": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "host": f"{os.cpu_count()} cores, {platform.machine()}"}
  nbformat.write(nb, path)
  return seconds


def main(argv: Sequence[str]) -> None:
  del argv
  paths = notebook_paths(FLAGS.names)
  for path in paths:
    print(f"{path.name}: running at its full setting ...", flush=True)
    seconds = execute_in_place(path, timeout=FLAGS.cell_timeout)
    print(f"{path.name}: {seconds / 60:.1f} min, outputs written", flush=True)


if __name__ == "__main__":
  FLAGS = flags.FLAGS
  flags.DEFINE_list("names", [], "Notebook stems to run (default: all of notebooks/).")
  flags.DEFINE_integer("cell_timeout", 1800, "Seconds one cell may run before the run stops.")
  app.run(main)
