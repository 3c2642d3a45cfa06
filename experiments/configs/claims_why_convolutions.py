"""Why convolutions (issue 21, item 3): LeNet-5 vs a fully connected net of its capacity on few digits.

  python -m experiments.claims.why_convolutions --workdir=/tmp/why_conv

18 trainings of 400 steps (BUILD.md gives the measured time);
scale up with `claim.examples_per_class`, `claim.seeds`, `num_steps`.
"""

import ml_collections

from experiments.configs import lenet5_digits


def get_config() -> ml_collections.ConfigDict:
  config = lenet5_digits.get_config()
  config.classes = tuple(range(10))  # all ten digits; `examples_per_class` of each for training
  config.augment = ()  # the architectures alone: random crops would teach the MLP the shifts too
  config.batch_size = 50  # at most 10 * the smallest N
  config.num_steps = 400
  config.eval_every = config.checkpoint_every = 400
  config.tensorboard = False
  config.claim = ml_collections.ConfigDict(dict(
      models=("lenet5", "mlp"),
      model_kwargs={"mlp": {"hidden": (60,)}},  # 62,110 parameters to LeNet-5's 61,706
      examples_per_class=(5, 20, 100),
      seeds=(0, 1, 2),  # each seed draws its own N examples per class and initialises the models
      max_shift=4,  # test images shifted by 0..max_shift pixels
      equivariance_images=100,  # test images the equivariance is measured on
  ))
  return config
