"""Augmentation, ten-crop and ensembles (issue 21, item 4): LeNet-5 on 20 digits of each class.

  python -m experiments.claims.augmentation --workdir=/tmp/augmentation

12 trainings of 600 steps (BUILD.md gives the measured time);
scale up with `examples_per_class`, `claim.seeds`, `claim.ensemble_size`, `num_steps`.
"""

import ml_collections

from experiments.configs import lenet5_digits

CROP = {"name": "random_crop", "pad": 2}


def get_config() -> ml_collections.ConfigDict:
  config = lenet5_digits.get_config()
  config.classes = tuple(range(10))
  config.examples_per_class = 20
  config.subset_seed = 0  # every run trains on the same 200 digits; `seed` draws initialisation and batches
  config.num_steps = 600
  config.eval_every = config.checkpoint_every = 600
  config.tensorboard = False
  config.claim = ml_collections.ConfigDict(dict(
      set_names=("none", "crop", "flip", "crop_flip", "rotate", "shear", "warp", "pca_colour"),
      augment_sets=dict(
          none=(),
          crop=(CROP,),
          flip=("flip_lr",),
          crop_flip=(CROP, "flip_lr"),
          rotate=({"name": "rotate", "max_degrees": 15.0},),
          shear=({"name": "shear", "max_degrees": 15.0},),
          warp=({"name": "warp", "strength": 2.0, "grid": 4},),
          # eigvals/eigvecs are filled in from the training images (classification.augment_spec)
          pca_colour=({"name": "pca_colour", "std": 0.1},),
      ),
      seeds=(0,),  # one model per set; (0, 1, 2) gives each set a mean and spread over seeds
      crop_pad=2,  # ten-crop: 32x32 crops of the test image zero-padded to 36x36, as random_crop's pad=2
      ensemble_set="crop",
      ensemble_size=5,  # models of ensemble_set with seeds seed..seed+4 (those in `seeds` are reused)
  ))
  return config
