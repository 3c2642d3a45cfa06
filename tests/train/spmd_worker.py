"""Trains LeNet-5 for a few steps on generated data and saves its final parameters and losses.

Run by test_parallel.py in subprocesses, with several host devices
(XLA_FLAGS) or several processes (JAX_COORDINATOR_ADDRESS, ...).
"""

import sys

import numpy as np

from cnnjax import models, train
from cnnjax.data import pipeline, prepare
from cnnjax.train import classify

import jax  # noqa: E402  (after cnnjax, which must not initialise the backend before `distributed`)
import ml_collections  # noqa: E402
from flax import traverse_util  # noqa: E402


def main(out: str, workdir: str, grad_accum_steps: str = "1") -> None:
  train.maybe_initialize_distributed()
  rng = np.random.default_rng(0)
  data = [{"image": rng.integers(0, 256, (32, 32, 1), dtype=np.uint8), "label": np.int64(i % 10)} for i in range(64)]
  config = ml_collections.ConfigDict(dict(
      seed=0, num_steps=20, batch_size=16, log_every=1, checkpoint_every=0, keep_checkpoints=1, tensorboard=False,
      optimizer=dict(name="momentum", learning_rate=0.05, schedule="constant"), grad_accum_steps=int(grad_accum_steps),
  ))
  state = train.fit(
      config, workdir, model=models.create("lenet5", num_classes=10),
      loss_fn=classify.cross_entropy_loss(10),
      batches=lambda start: pipeline.batches(data, 16, seed=0, start_step=start),
      augment_fn=prepare.make_augment_fn(np.float32(0.5), np.float32(0.25)),
  ).state
  params = traverse_util.flatten_dict(jax.device_get(state.params), sep="/")
  losses = [r["train_loss"] for r in train.read_metrics(workdir) if "train_loss" in r]
  np.savez(out, losses=np.array(losses), **params)


if __name__ == "__main__":
  main(*sys.argv[1:])
