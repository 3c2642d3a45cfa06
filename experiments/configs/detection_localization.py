"""Classification with localization (p_c, box, class) on the embedded `shapes_single`; reports mean box IoU."""

import ml_collections

from experiments.configs import detection_yolo


def get_config() -> ml_collections.ConfigDict:
  config = detection_yolo.get_config()
  config.task = "localization"
  config.dataset = "shapes_single"
  config.image_size = 64
  config.model = "localizer"
  config.model_kwargs = ml_collections.ConfigDict(dict(widths=(16, 32, 64, 64), hidden=128))
  config.batch_size = 64
  config.eval_batch_size = 250
  config.num_steps = 600
  config.optimizer.learning_rate = 3e-3
  config.optimizer.warmup_steps = 50
  config.checkpoint_every = 300
  return config
