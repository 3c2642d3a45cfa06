"""SIGKILL after a checkpoint, then the same command again: the run resumes and ends bit-identical.

Every experiment that trains or optimises runs as a user runs it
(`python -m experiments.NAME`), tiny, three times: uninterrupted, killed after
its first checkpoint, and resumed with the same command.
"""

import glob
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from cnnjax import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
STEPS = 80
FIT = ["--config.checkpoint_every=5", "--config.optimizer.warmup_steps=0", "--config.eval_every=0", "--config.log_every=5", f"--config.num_steps={STEPS}"]
EXPERIMENTS = {
    "classification": ["--config.batch_size=16", "--config.tensorboard=False", *FIT],
    "detection": ["--config.batch_size=4", "--config.eval_limit=4", "--config.model_kwargs.widths=(4, 8)",
                  "--config.model_kwargs.deep=False", "--config.max_objects=4", "--config.num_plot_images=1", *FIT],
    "embedding": ["--config=experiments/configs/embedding_digits.py", "--config.model_kwargs.widths=(4, 8)",
                  "--config.embedding_dim=8", "--config.p=4", "--config.k=2", "--config.batch_size=8",
                  "--config.val_pairs=40", "--config.test_pairs=60", "--config.n_folds=3",
                  "--config.eval_batch_size=200", *FIT],
    "style_transfer": ["--config.image_size=32", "--config.scales=(1.0,)", "--config.arch=vgg16",
                       "--config.content_layer=relu2_2", "--config.style_layers=('relu1_1', 'relu3_1')",
                       "--config.style_weights=(0.5, 0.5)", "--config.log_every=5", "--config.checkpoint_every=5",
                       f"--config.num_steps={STEPS}"],
}


def saved_steps(workdir) -> list[int]:
  """Steps of the complete checkpoints: orbax step directories, or the style experiment's state file."""
  steps = [int(os.path.basename(d)) for d in glob.glob(os.path.join(workdir, "checkpoints", "*")) if
           os.path.basename(d).isdigit()]
  state = os.path.join(workdir, "checkpoints", "state.npz")
  if os.path.exists(state):
    with np.load(state, allow_pickle=False) as f:
      steps.append(int(f["step"]))
  return steps


def final_state(workdir, experiment):
  if experiment == "style_transfer":
    with np.load(os.path.join(workdir, "checkpoints", "state.npz"), allow_pickle=False) as f:
      return {"image": f["image"]}
  return train.load_variables(str(workdir))


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_sigkill_after_a_checkpoint_resumes_to_identical_results(tmp_path, experiment):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}

  def command(workdir):
    return [sys.executable, "-m", f"experiments.{experiment}", f"--workdir={workdir}", *EXPERIMENTS[experiment]]

  reference = subprocess.run(command(tmp_path / "reference"), cwd=ROOT, env=env, capture_output=True, text=True)
  assert reference.returncode == 0, reference.stderr[-3000:]

  victim = subprocess.Popen(command(tmp_path / "victim"), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while not saved_steps(tmp_path / "victim"):
    assert victim.poll() is None and time.time() < deadline, "no checkpoint appeared"
    time.sleep(0.05)
  victim.send_signal(signal.SIGKILL)
  victim.wait()
  assert max(saved_steps(tmp_path / "victim")) < STEPS, "the run finished before it could be killed"

  resumed = subprocess.run(command(tmp_path / "victim"), cwd=ROOT, env=env, capture_output=True, text=True)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "resuming from" in resumed.stderr
  jax.tree.map(np.testing.assert_array_equal, final_state(tmp_path / "victim", experiment),
               final_state(tmp_path / "reference", experiment))
