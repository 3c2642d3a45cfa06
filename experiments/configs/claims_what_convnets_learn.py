"""What ConvNets learn (issue 21, item 7): top-9 patches of units in five layers of a VGG trained on `glyphs`.

  python -m experiments.claims.what_convnets_learn --workdir=/tmp/what_convnets_learn

One training of a narrow VGG-11 (BUILD.md gives the measured time); scale up with `num_steps`, `model_kwargs`.
"""

import ml_collections

from experiments.configs import lenet5_digits


def get_config() -> ml_collections.ConfigDict:
  config = lenet5_digits.get_config()
  config.dataset = "glyphs"
  config.model = "vgg11_bn"
  config.model_kwargs = ml_collections.ConfigDict(dict(widths=(32, 64, 96, 128, 128), hidden=256, dropout_rate=0.3))
  config.num_steps = 1500
  config.optimizer.learning_rate = 1e-3
  config.eval_every = config.checkpoint_every = 1500
  config.tensorboard = False
  config.claim = ml_collections.ConfigDict(dict(
      layers=("relu1_1", "relu2_1", "relu3_2", "relu4_2", "relu5_2"),  # the last ReLU of each of the five blocks
      images=0,  # test images searched for each unit's top patches; 0: all
      k=9,  # patches per unit, each from another test image
      units_shown=6,  # units a layer in the figure, drawn with `seed`
  ))
  return config
