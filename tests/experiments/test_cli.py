"""Misuse of the command line stops with one message naming the file, path or field, before any data is read."""

import json
import os
import subprocess
import sys

import pytest

from cnnjax.train.workdir import WorkdirError
from experiments import cli
from experiments.configs import detection_yolo, lenet5_digits, style_default

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def run_cli(experiment, *args):
  """The stderr of a `python -m experiments.NAME` that must fail with a message, not a traceback."""
  out = subprocess.run([sys.executable, "-m", f"experiments.{experiment}", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert out.returncode != 0
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  return out.stderr


def test_config_files_missing_failing_or_without_get_config_are_named(tmp_path):
  assert cli.config_file_problem(f"{tmp_path}/nosuch.py").startswith(f"--config={tmp_path}/nosuch.py: no such file")
  (tmp_path / "empty.py").write_text("x = 1\n")
  assert cli.config_file_problem(f"{tmp_path}/empty.py").startswith(
      f"--config={tmp_path}/empty.py defines no get_config()")
  (tmp_path / "broken.py").write_text("def get_config(:\n")
  assert cli.config_file_problem(f"{tmp_path}/broken.py").startswith(
      f"--config={tmp_path}/broken.py fails to load: SyntaxError")
  assert cli.config_file_problem(f"{cli.CONFIGS}/lenet5_digits.py") is None
  # From the command line: one message, no chained tracebacks.
  assert f"--config={tmp_path}/nosuch.py: no such file" in run_cli(
      "embedding", f"--config={tmp_path}/nosuch.py", f"--workdir={tmp_path}/w")


@pytest.mark.parametrize("experiment,config,fits", [
    ("classification", detection_yolo, "detection"),
    ("detection", style_default, "style_transfer"),
    ("embedding", lenet5_digits, "classification"),
])
def test_a_config_of_another_experiment_names_the_right_one(experiment, config, fits):
  with pytest.raises(ValueError, match=rf"--config=F.py is not a {experiment} config \(it has no .*\); it is a "
                                       rf"config of {fits}: run python -m experiments.{fits} --config=F.py"):
    cli.check_experiment(config.get_config(), experiment, "F.py")
  cli.check_experiment(config.get_config(), fits, "F.py")


def test_a_config_of_another_experiment_fails_from_the_command_line_before_writing(tmp_path):
  message = run_cli("classification", "--config=experiments/configs/detection_yolo.py", f"--workdir={tmp_path}")
  assert "is not a classification config" in message and "run python -m experiments.detection" in message
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize("workdir,data_dir,message", [
    ("{file}", "", r"--workdir='.*file' is a file, not a directory"),
    ("{file}/run", "", r"--workdir='.*file/run' lies under '.*file', which is a file"),
    ("{tmp}/w", "{file}", r"config.data_dir='.*file' is a file, not a directory"),
])
def test_a_directory_path_that_is_a_file_is_named(tmp_path, workdir, data_dir, message):
  (tmp_path / "file").write_text("")
  config = lenet5_digits.get_config()
  config.data_dir = data_dir.format(file=tmp_path / "file")
  with pytest.raises(WorkdirError, match=message):
    cli.check_paths(config, workdir.format(file=tmp_path / "file", tmp=tmp_path))


def test_a_resume_with_another_batch_size_is_refused_before_the_data_is_read(tmp_path):
  stored = lenet5_digits.get_config()
  stored.batch_size = 32
  (tmp_path / "config.json").write_text(stored.to_json_best_effort(indent=2, sort_keys=True))
  (tmp_path / "metrics.jsonl").write_text('{"step": 5, "train_loss": 1.0}\n')
  message = run_cli("classification", f"--workdir={tmp_path}", f"--config.data_dir={tmp_path}/data",
                    "--config.batch_size=64")
  assert "  batch_size: 32 -> 64" in message.splitlines()
  assert "--allow_config_change" in message
  assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 32
  assert not os.path.exists(tmp_path / "data"), "nothing may be read or generated before the refusal"


def test_a_second_run_on_a_workdir_in_use_stops_at_once_naming_the_first(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time, ml_collections\nfrom cnnjax.train import workdir\n"
       "with workdir.claim(sys.argv[1], ml_collections.ConfigDict()):\n  print('holding', flush=True)\n"
       "  time.sleep(120)", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "holding"
    message = run_cli("embedding", f"--workdir={tmp_path}", f"--config.data_dir={tmp_path}/data")
  finally:
    holder.kill()
    holder.wait()
  assert f"is in use by pid {holder.pid} on host " in message
  assert not os.path.exists(tmp_path / "data"), "nothing may be read or generated before the refusal"
