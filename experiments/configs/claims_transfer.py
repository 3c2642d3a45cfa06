"""Transfer learning from a large source task (issue 21, item 2): LeNet-5 on `glyphs`.

  python -m experiments.claims.transfer --workdir=/tmp/transfer

Pretrains on 15 glyph classes (15,000 images), then learns the other 5 from 1, 3 or 10 images a class, with
every freeze depth, cached features, and from scratch (BUILD.md gives the measured time); scale up with
`claim.seeds`, `claim.examples_per_class`, `claim.pretrain_steps`, `num_steps`.
"""

import ml_collections

from experiments.configs import lenet5_digits


def get_config() -> ml_collections.ConfigDict:
  config = lenet5_digits.get_config()
  config.dataset = "glyphs"
  config.classes = (15, 16, 17, 18, 19)  # the target task: glyphs the source never saw
  config.examples_per_class = 10  # replaced by each of claim.examples_per_class
  config.num_steps = 200  # each target run
  config.batch_size = 50  # at most (target classes) * N
  config.eval_every = config.checkpoint_every = 200
  config.tensorboard = False
  config.claim = ml_collections.ConfigDict(dict(
      source_classes=tuple(range(15)),  # the source task: all their training images
      pretrain_steps=3000,
      examples_per_class=(1, 3, 10),
      # LeNet-5's stages are conv1, conv2, fc1, fc2, fc3: 0 fine-tunes every layer, 4 trains the new head alone
      freeze_stages=(0, 2, 4),
      head="fc3",  # the layer replaced by a new one of the target's classes
      learning_rates={"freeze0": 1e-3, "freeze2": 1e-3},  # runs that train pretrained layers; others: the optimizer's
      seeds=(0, 1, 2),  # each seed draws its own N images a class and initialises the new head
  ))
  return config
