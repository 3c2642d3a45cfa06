import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnjax.train.checkpoint import CheckpointDamagedError, Checkpointer, load_variables
from cnnjax.train.state import create_train_state


class Tiny(nn.Module):
  features: int = 3

  @nn.compact
  def __call__(self, x, train=False):
    return nn.BatchNorm(use_running_average=not train)(nn.Dense(self.features)(x))


def state_for(features=3, inputs=4):
  return create_train_state(Tiny(features), optax.adam(1e-3), jax.random.PRNGKey(0), jnp.ones((2, inputs)))


def test_keeps_last_k_and_the_best(tmp_path):
  ckpt = Checkpointer(str(tmp_path / "checkpoints"), keep=2, best_metric="acc")
  state = state_for()
  for step, acc in zip(range(1, 6), [0.3, 0.9, 0.1, 0.2, 0.4]):
    ckpt.save(step, state.replace(step=jnp.int32(step)), metrics={"acc": acc})
  ckpt.close()
  assert sorted(int(d) for d in os.listdir(tmp_path / "checkpoints")) == [2, 4, 5]


def test_restore_round_trip_and_load_variables(tmp_path):
  state = state_for()
  trained = state.replace(step=jnp.int32(7), params=jax.tree.map(lambda p: p + 1.5, state.params))
  ckpt = Checkpointer(str(tmp_path / "checkpoints"))
  ckpt.save(7, trained)
  ckpt.close()
  restored = Checkpointer(str(tmp_path / "checkpoints")).restore(state)
  assert int(restored.step) == 7
  jax.tree.map(np.testing.assert_array_equal, restored.params, trained.params)
  jax.tree.map(np.testing.assert_array_equal, restored.opt_state, trained.opt_state)
  loaded = load_variables(str(tmp_path))
  jax.tree.map(np.testing.assert_array_equal, loaded["params"], trained.params)
  assert set(loaded["batch_stats"]["BatchNorm_0"]) == {"mean", "var"}


def test_no_checkpoint_returns_the_given_state(tmp_path):
  state = state_for()
  assert Checkpointer(str(tmp_path / "c")).restore(state) is state
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    load_variables(str(tmp_path / "empty"))


def test_mismatched_shapes_name_the_path_and_both_shapes(tmp_path):
  ckpt = Checkpointer(str(tmp_path / "checkpoints"))
  ckpt.save(1, state_for(inputs=4))
  ckpt.close()
  with pytest.raises(ValueError, match=r"params/Dense_0/kernel has shape \(4, 3\) but the model expects \(5, 3\)"):
    Checkpointer(str(tmp_path / "checkpoints")).restore(state_for(inputs=5))


def test_a_partial_save_is_never_restored(tmp_path):
  state = state_for()
  ckpt = Checkpointer(str(tmp_path / "checkpoints"))
  ckpt.save(1, state.replace(step=jnp.int32(1)))
  ckpt.close()
  # What a save killed midway leaves behind: a temporary directory, never renamed.
  os.makedirs(tmp_path / "checkpoints" / "2.orbax-checkpoint-tmp-123" / "default")
  restored = Checkpointer(str(tmp_path / "checkpoints")).restore(state)
  assert int(restored.step) == 1


def test_bad_options():
  with pytest.raises(ValueError, match="keep_checkpoints=0"):
    Checkpointer("/tmp/unused", keep=0)


def test_sigkill_during_a_save_keeps_the_previous_checkpoint(tmp_path):
  import signal
  import subprocess
  import sys
  import time

  directory = tmp_path / "checkpoints"
  worker = os.path.join(os.path.dirname(__file__), "save_victim.py")
  proc = subprocess.Popen([sys.executable, worker, str(directory)], stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.stdout.readline().strip() == "saved 1"
  deadline = time.time() + 120
  while not any("tmp" in d for d in os.listdir(directory)):  # the second save has begun
    assert proc.poll() is None and time.time() < deadline, "the second save never started"
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert "2" not in os.listdir(directory), "the killed save must not look complete"
  restored = Checkpointer(str(directory)).restore({"w": jnp.zeros((1000,))})
  np.testing.assert_array_equal(restored["w"], np.ones(1000))


def saved_steps(directory, steps=(1, 2, 3)):
  state = state_for()
  ckpt = Checkpointer(str(directory))
  for step in steps:
    ckpt.save(step, state.replace(step=jnp.int32(step), params=jax.tree.map(lambda p: p + step, state.params)))
  ckpt.close()
  return state


def truncate_data_files(step_dir):
  for path in step_dir.glob("default/**/d/*"):
    with open(path, "r+b") as f:
      f.truncate(path.stat().st_size // 2)


@pytest.mark.parametrize("damage", [lambda d: os.remove(d / "default" / "_METADATA"), truncate_data_files],
                         ids=["missing metadata", "truncated data"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, caplog, damage):
  state = saved_steps(tmp_path / "checkpoints")
  damage(tmp_path / "checkpoints" / "3")
  ckpt = Checkpointer(str(tmp_path / "checkpoints"))
  restored = ckpt.restore(state)
  assert int(restored.step) == 2
  jax.tree.map(lambda r, p: np.testing.assert_array_equal(r, p + 2), restored.params, state.params)
  assert any(f"skipping damaged checkpoint {tmp_path}/checkpoints/3:" in m for m in caplog.messages)
  # Set aside, not deleted, so the run can save step 3 again.
  assert sorted(os.listdir(tmp_path / "checkpoints-damaged")) == ["3"]
  ckpt.save(3, restored.replace(step=jnp.int32(3)))
  ckpt.close()
  assert Checkpointer(str(tmp_path / "checkpoints")).latest_step == 3


def test_load_variables_skips_a_damaged_checkpoint(tmp_path):
  state = saved_steps(tmp_path / "checkpoints", steps=(1, 2))
  truncate_data_files(tmp_path / "checkpoints" / "2")
  loaded = load_variables(str(tmp_path))
  jax.tree.map(lambda r, p: np.testing.assert_array_equal(r, p + 1), loaded["params"], state.params)


def test_every_checkpoint_damaged_names_each_and_the_way_out(tmp_path):
  state = saved_steps(tmp_path / "checkpoints", steps=(1, 2))
  for step in ("1", "2"):
    os.remove(tmp_path / "checkpoints" / step / "default" / "_METADATA")
  with pytest.raises(CheckpointDamagedError, match=r"every checkpoint under .* is damaged:\n  .*/2: .*\n  .*/1: "
                                                   r".*\nMove .* away to start the run over, or use another"):
    Checkpointer(str(tmp_path / "checkpoints")).restore(state)
