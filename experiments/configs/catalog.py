"""The ImageNet recipe for classic networks on any TFDS image-classification dataset prepared in `--config.data_dir`.

Training: Inception (random-resized) crop of 8-100% of the area at aspect 3/4-4/3
to 224 + a horizontal flip, on the host from the still-encoded JPEG; evaluation:
shorter side resized to 256, centre 224 crop; ImageNet's channel mean and std;
label smoothing 0.1; SGD with momentum, linear warm-up then cosine decay;
bfloat16 compute. Pick the network with the config argument, e.g.
  --config=experiments/configs/catalog.py:resnet50
  --config=experiments/configs/catalog.py:googlenet --config.dataset=imagenette/160px
Models: alexnet, vgg16, resnet50, googlenet (auxiliary losses weighted 0.3).
"""

import ml_collections

from experiments.configs import lenet5_digits

# The usual ImageNet channel statistics, in [0, 1] units (no pass over the data at start-up).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

RECIPES = {
    # (learning rate, weight decay, extra model kwargs); SGD with momentum, cosine decay, as the papers.
    "alexnet": (0.01, 5e-4, {}),
    "vgg16": (0.01, 5e-4, {}),
    "resnet50": (0.1, 1e-4, {}),
    "googlenet": (0.01, 2e-4, {"aux_logits": True}),
}


def get_config(model: str = "resnet50") -> ml_collections.ConfigDict:
  if model not in RECIPES:
    raise ValueError(f"config argument {model!r} is not one of {sorted(RECIPES)}")
  learning_rate, weight_decay, model_kwargs = RECIPES[model]
  config = lenet5_digits.get_config()
  config.model = model
  config.model_kwargs = ml_collections.ConfigDict(model_kwargs)
  config.dataset = "imagenette"
  config.train_split = "train"
  config.eval_split = "validation"
  config.image_size = 224
  config.host_crop = "inception"
  config.crop_scale = (0.08, 1.0)
  config.crop_ratio = (3 / 4, 4 / 3)
  config.eval_resize = 0  # 256 at image_size 224
  config.augment = ()  # the flip is part of the host crop; the device only normalises
  config.channel_mean = IMAGENET_MEAN
  config.channel_std = IMAGENET_STD
  config.data_workers = 8
  config.batch_size = 128
  config.eval_batch_size = 256
  config.num_steps = 20_000
  config.dtype = "bfloat16"
  config.optimizer = ml_collections.ConfigDict(
      dict(name="momentum", learning_rate=learning_rate, momentum=0.9, weight_decay=weight_decay,
           schedule="warmup_cosine", warmup_steps=500)
  )
  config.label_smoothing = 0.1
  config.aux_weight = 0.3
  config.log_every = 100
  config.eval_every = 2000
  config.checkpoint_every = 1000
  return config
