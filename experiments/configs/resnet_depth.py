"""Plain vs residual nets of growing depth (He et al. 2015, fig. 6) on the embedded `glyphs`.

Trains plain20, plain56, resnet20 and resnet56 with one recipe and plots their
training error against the step in `workdir/plots/train_error.png`. The 20,000
glyphs are not memorised in the budget (the digits are, by every net, so no
degradation shows on them). 400 steps fit the ~10-minute budget on 2 CPU cores;
`--config.num_steps=800` gives the longer curve of BUILD.md.
"""

import ml_collections

from experiments.configs import lenet5_digits


def get_config() -> ml_collections.ConfigDict:
  config = lenet5_digits.get_config()
  config.dataset = "glyphs"
  config.model = "resnet20"
  config.batch_size = 32  # more updates for the budget: every net sits at chance for its first 100-200
  config.num_steps = 400
  # Adam: with He et al.'s SGD (0.1, momentum 0.9, step decay) neither 56-layer net left chance in 400 steps
  config.optimizer = ml_collections.ConfigDict(
      dict(name="adam", learning_rate=1e-3, schedule="warmup_cosine", warmup_steps=50, weight_decay=0.0,
           momentum=0.9)
  )
  config.eval_every = 200
  config.checkpoint_every = 400
  config.log_every = 20
  config.tensorboard = False
  config.variant_names = ("plain20", "plain56", "resnet20", "resnet56")
  config.variants = ml_collections.ConfigDict({name: {"model": name} for name in config.variant_names})
  config.compare_metric = "train_error"
  return config
