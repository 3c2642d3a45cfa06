"""A workdir belongs to one run: the lock between processes, and the config comparison on resume."""

import json
import os
import signal
import subprocess
import sys

import ml_collections
import pytest

from cnnjax.train import workdir
from cnnjax.train.workdir import WorkdirError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
# Holds the workdir until killed; prints once it holds it.
HOLDER = """
import sys, time, ml_collections
from cnnjax.train import workdir
with workdir.claim(sys.argv[1], ml_collections.ConfigDict({"seed": 0})):
  print("holding", flush=True)
  time.sleep(120)
"""


def config(**overrides):
  c = ml_collections.ConfigDict(dict(seed=0, num_steps=10, batch_size=8, log_every=2,
                                     optimizer=dict(name="adam", learning_rate=0.01)))
  c.update(overrides)
  return c


def with_progress(path, cfg):
  """A workdir as a run of `cfg` leaves it: config.json and a logged metric."""
  with workdir.claim(str(path), cfg):
    (path / "metrics.jsonl").write_text('{"step": 2, "train_loss": 1.0}\n')


def test_a_second_process_fails_at_once_naming_the_holder_and_a_killed_holder_frees_the_workdir(tmp_path):
  holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
  try:
    assert holder.stdout.readline().strip() == "holding"
    with pytest.raises(WorkdirError, match=rf"in use by pid {holder.pid} on host .*, started 20\d\d-.*wait for "
                                           "that run to end, or choose another --workdir"):
      with workdir.claim(str(tmp_path), config()):
        pass
    with pytest.raises(WorkdirError, match=rf"in use by pid {holder.pid} "):
      workdir.check_free(str(tmp_path))
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  workdir.check_free(str(tmp_path))
  with workdir.claim(str(tmp_path), config()):  # flock died with the process
    assert f"pid {os.getpid()}" in (tmp_path / workdir.LOCK_FILE).read_text()


def test_a_result_field_change_is_refused_before_anything_is_written(tmp_path):
  with_progress(tmp_path, config())
  stored = (tmp_path / "config.json").read_text()
  changed = config(batch_size=16, optimizer=dict(name="sgd", learning_rate=0.01), augment="flip")
  with pytest.raises(WorkdirError) as error:
    with workdir.claim(str(tmp_path), changed):
      pytest.fail("the run must not start")
  message = str(error.value)
  for line in ("  augment: <absent> -> \"flip\"", "  batch_size: 8 -> 16", "  optimizer.name: \"adam\" -> \"sgd\""):
    assert line in message.splitlines()
  assert "Use a new --workdir, or pass --allow_config_change (config.allow_config_change=True)" in message
  assert (tmp_path / "config.json").read_text() == stored


def test_bookkeeping_fields_may_change_and_the_config_is_rewritten(tmp_path):
  with_progress(tmp_path, config())
  with workdir.claim(str(tmp_path), config(num_steps=20, log_every=5, data_dir="/elsewhere")):
    pass
  assert json.loads((tmp_path / "config.json").read_text())["num_steps"] == 20
  assert not list(tmp_path.glob("config.before-*.json"))


def test_the_override_resumes_and_keeps_the_old_config(tmp_path):
  with_progress(tmp_path, config())
  with workdir.claim(str(tmp_path), config(batch_size=16, allow_config_change=True)):
    pass
  assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 16
  [old] = tmp_path.glob("config.before-*.json")
  assert json.loads(old.read_text())["batch_size"] == 8


def test_a_workdir_without_steps_takes_any_config(tmp_path):
  with workdir.claim(str(tmp_path), config()):
    pass  # a run that failed before its first step
  with workdir.claim(str(tmp_path), config(batch_size=16)):
    pass
  assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 16


def test_a_damaged_config_json_is_named_and_kept(tmp_path):
  with_progress(tmp_path, config())
  (tmp_path / "config.json").write_text('{"seed": 0, "num_st')
  with pytest.raises(WorkdirError, match=r"config.json is not valid JSON .* not overwritten"):
    workdir.check_config(str(tmp_path), config())
  assert (tmp_path / "config.json").read_text() == '{"seed": 0, "num_st'


@pytest.mark.parametrize("sub,message", [("", "is a file"), ("run", "lies under .*, which is a file")])
def test_a_workdir_that_is_or_lies_under_a_file_is_named(tmp_path, sub, message):
  path = tmp_path / "taken"
  path.write_text("")
  with pytest.raises(WorkdirError, match=rf"workdir=.*taken.*{message}, not a directory"):
    with workdir.claim(str(path / sub) if sub else str(path), config()):
      pass
