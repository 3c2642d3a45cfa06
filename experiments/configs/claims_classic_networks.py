"""Classic networks (issue 21, item 5): AlexNet, VGG-16, GoogLeNet (with / without aux heads and 1x1 bottlenecks)
and NiN, slimmed, on the 64x64 `shape_styles`.

  python -m experiments.claims.classic_networks --workdir=/tmp/classic

6 trainings of 300 steps (BUILD.md gives the measured time);
scale up with `claim.width`, `claim.seeds`, `num_steps`.
"""

import ml_collections

from experiments.configs import lenet5_digits


def get_config() -> ml_collections.ConfigDict:
  config = lenet5_digits.get_config()
  config.dataset = "shape_styles"
  config.augment = ()  # the architectures alone, one recipe for all
  config.batch_size = 32
  config.num_steps = 300
  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 30
  config.eval_every = config.checkpoint_every = 300
  config.tensorboard = False
  config.claim = ml_collections.ConfigDict(dict(
      # run name -> registry model and its kwargs besides `width`; GoogLeNet's `aux_logits` heads are weighted by
      # `aux_weight` in training and unused at test time
      runs=dict(
          alexnet=dict(model="alexnet", kwargs={}),
          vgg16=dict(model="vgg16", kwargs={}),
          googlenet=dict(model="googlenet", kwargs={}),
          googlenet_aux=dict(model="googlenet", kwargs={"aux_logits": True}),
          googlenet_no_1x1=dict(model="googlenet", kwargs={"bottleneck": False}),
          nin=dict(model="nin", kwargs={}),
      ),
      run_names=("alexnet", "vgg16", "googlenet", "googlenet_aux", "googlenet_no_1x1", "nin"),
      width=0.125,  # every net's channels (and hidden units) times this: 1 is the paper's net
      seeds=(0,),
  ))
  return config
