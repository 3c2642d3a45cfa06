"""Saves checkpoint 1, prints 'saved 1', then saves a large checkpoint 2 (to be killed mid-save by the test)."""

import sys

import jax.numpy as jnp
import numpy as np

from cnnjax.train.checkpoint import Checkpointer

directory = sys.argv[1]
checkpointer = Checkpointer(directory, keep=5)
checkpointer.save(1, {"w": jnp.full((1000,), 1.0)})
checkpointer.close()
print("saved 1", flush=True)
checkpointer = Checkpointer(directory, keep=5)
# 512 MB of incompressible bytes: slow enough to save that the kill lands mid-save.
big = {f"w{i}": jnp.asarray(np.frombuffer(np.random.bytes(4096 * 4096 * 4), np.float32).reshape(4096, 4096))
       for i in range(8)}
checkpointer.save(2, big)
checkpointer.close()
print("saved 2", flush=True)
