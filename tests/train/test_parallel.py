"""Data parallelism: 4 host devices against 1, and two processes joined with jax.distributed."""

import os
import socket
import subprocess
import sys

import numpy as np

WORKER = os.path.join(os.path.dirname(__file__), "spmd_worker.py")


def launch(tmp_path, name, *, devices=1, process_id=None, port=None, grad_accum_steps=1):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
  if process_id is not None:
    env.update(JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(process_id))
  out = tmp_path / f"{name}.npz"
  proc = subprocess.Popen([sys.executable, WORKER, str(out), str(tmp_path / "work" / name.split("_")[0]),
                           str(grad_accum_steps)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  return proc, out


def finish(proc, out):
  log, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, log[-3000:]
  return np.load(out)


def free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_four_devices_give_the_losses_of_one(tmp_path):
  one, four = launch(tmp_path, "one"), launch(tmp_path, "four", devices=4)
  one, four = finish(*one), finish(*four)
  assert len(one["losses"]) == 20
  np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5)


def test_accumulating_on_four_devices_gives_the_losses_of_one(tmp_path):
  # Micro-batches are strided over the batch, so each device holds its share of each; the sum is the same.
  one, four = (launch(tmp_path, name, devices=n, grad_accum_steps=2) for name, n in (("one", 1), ("four", 4)))
  one, four = finish(*one), finish(*four)
  np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5)


def test_two_processes_train_one_run_and_agree(tmp_path):
  port = free_port()
  procs = [launch(tmp_path, f"dist_{i}", process_id=i, port=port) for i in range(2)]
  results = [finish(*p) for p in procs]
  reference = finish(*launch(tmp_path, "two", devices=2))
  for key in reference.files:
    if key != "losses":
      np.testing.assert_array_equal(results[0][key], results[1][key], err_msg=key)
      np.testing.assert_allclose(results[0][key], reference[key], rtol=1e-5, atol=1e-6, err_msg=key)
  np.testing.assert_allclose(results[0]["losses"], reference["losses"], rtol=1e-5)
