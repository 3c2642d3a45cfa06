"""Head-only training on features computed once by a frozen trunk."""

from typing import Callable, Sequence

import flax.linen as nn
import jax
import numpy as np

from cnnjax.data.pipeline import eval_batches
from cnnjax.models.intermediates import intermediates


class LinearHead(nn.Module):
  """The classifier head alone: one dense layer on the trunk's features."""

  num_classes: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    return nn.Dense(self.num_classes)(x)


def cached_features(
    model: nn.Module,
    variables: dict,
    source: Sequence[dict],
    *,
    head: str,
    preprocess: Callable[[dict], dict],
    batch_size: int = 256,
) -> list[dict]:
  """One pass of the frozen trunk over `source`: records `{'image': features, 'label'}` (float32).

  The features are the inputs of submodule `head`, computed without
  augmentation, so they can be reused every epoch.
  """
  trunk = jax.jit(lambda images: intermediates(model, variables, images, [head + ".input"])[head + ".input"])
  records = []
  for batch in eval_batches(source, batch_size):
    features = np.asarray(trunk(preprocess(batch)["image"]), np.float32)
    records += [{"image": f, "label": l} for f, l, m in zip(features, batch["label"], batch["mask"]) if m]
  return records


def splice_head(variables: dict, head_params: dict, head: str) -> dict:
  """`variables` with the parameters of submodule `head` replaced by a trained `LinearHead`'s."""
  if head not in variables["params"]:
    raise ValueError(f"the model has no parameters under {head!r}; expected one of {sorted(variables['params'])}")
  return {**variables, "params": {**variables["params"], head: head_params["Dense_0"]}}
