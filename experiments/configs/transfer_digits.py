"""Transfer learning on the embedded digits: pretrain on 0-4, then learn 5-9 from 10 images a class.

Variants, each in `workdir/<name>`:
  pretrain  LeNet-5 on digits 0-4 (all training images).
  frozen    digits 5-9, 10 a class: the pretrained trunk frozen, a new head trained.
  cached    the same, the trunk's features computed once and the head trained on them alone.
  finetune  the same data: every layer trained from the pretrained weights, a smaller rate.
  scratch   the same data and model from a random initialisation.
`results.json` and `plots/test_accuracy.png` put the last three side by side.
"""

import ml_collections

from experiments.configs import lenet5_digits

NEW_TASK = dict(classes=(5, 6, 7, 8, 9), examples_per_class=10, num_steps=300, batch_size=50)
HEAD = (r"^params/fc3/",)


def get_config() -> ml_collections.ConfigDict:
  config = lenet5_digits.get_config()
  config.classes = (0, 1, 2, 3, 4)
  config.num_steps = 600
  config.eval_every = 100
  config.checkpoint_every = 300
  config.variant_names = ("pretrain", "frozen", "cached", "finetune", "scratch")
  config.variants = ml_collections.ConfigDict({
      "pretrain": {},
      "frozen": {**NEW_TASK, "transfer": {"init_from": "pretrain", "reinit": HEAD, "freeze_stages": 4}},
      "cached": {**NEW_TASK, "augment": (), "transfer": {"init_from": "pretrain", "reinit": HEAD, "cached_head": "fc3"}},
      "finetune": {**NEW_TASK, "transfer": {"init_from": "pretrain", "reinit": HEAD},
                   "optimizer": {"learning_rate": 3e-4}},
      "scratch": dict(NEW_TASK),
  })
  config.compare_metric = "test_accuracy"
  return config
