"""Benchmark on this CPU: LeNet-5 and ResNet-20 on 1, 2 and 4 host devices, NMS, the style step, vs PyTorch;
conv layers on XLA against cnnjax's CPU kernel."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.devices = (1, 2, 4)  # host device counts on the CPU (one process each); accelerators use 1, 2, 4.. of all
  c.models = ml_collections.ConfigDict({
      "lenet5": {"image_shape": (32, 32, 1), "batch_sizes": (256,)},
      "resnet20": {"image_shape": (32, 32, 3), "batch_sizes": (128,)},
      "resnet50": {"image_shape": (224, 224, 3), "batch_sizes": (256,)},
  })
  c.model_names = ("lenet5", "resnet20")  # which of `models` to run
  c.dtypes = ("float32",)  # compute dtypes; parameters stay float32
  c.num_classes = 10
  c.learning_rate = 0.01  # SGD with momentum, the same in both frameworks
  c.momentum = 0.9
  c.warmup = 1  # untimed steps at the start of each turn (the first one compiles)
  c.steps = 5  # timed steps; medians are reported
  c.turn = 5  # timed steps one framework (or path) runs back to back before the other's turn, as in a training loop
  c.fed_steps = 0  # >0: also time train steps fed from the host through prefetch_to_mesh
  # Train steps fed by the input pipeline from ImageNet-like JPEGs (`experiments.bench.jpeg_dataset` config
  # `dataset`: Inception crop to the model's size and channels + flip, in `workers` grain processes).
  c.jpeg_fed = ml_collections.ConfigDict({"dataset": "", "data_dir": "", "workers": 0, "warmup": 3, "steps": 20})
  c.torch = True  # compare with the PyTorch twins where torch is installed (and sees the accelerator)
  c.torch_every_device_count = False  # also time torch beside 2, 4, .. (host) devices, not only beside 1
  c.torch_formats = ("nchw",)  # PyTorch memory formats to time: 'nchw' (default) and/or 'nhwc' (channels_last)
  c.stock_flax = True  # also time each model on stock Flax layers (`layers.stock_flax()`), beside one device
  # The train step with one training option on (issue 22), against the plain step, on one device. Off by
  # default; e.g. --config.train_option_names="('mixup', 'cutmix', 'randaugment', 'ema', 'grad_accum4')".
  c.train_options = ml_collections.ConfigDict({
      "mixup": {"mixup_alpha": 0.2},
      "cutmix": {"cutmix_alpha": 1.0},
      "mixup_cutmix": {"mixup_alpha": 0.2, "cutmix_alpha": 1.0},
      "randaugment": {"randaugment": (2, 9)},
      "ema": {"ema_decay": 0.999},
      "grad_accum4": {"grad_accum_steps": 4},
  })
  c.train_option_names = ()
  c.nms = ml_collections.ConfigDict({"num_boxes": (100, 1000, 4000), "iou_threshold": 0.5, "steps": 5})
  c.style = ml_collections.ConfigDict({"enabled": True, "image_size": 128, "arch": "vgg19",
                                       "widths": (64, 128, 256, 512, 512), "dtype": "float32", "steps": 5})
  # (batch, size, in, out, kernel): ResNet-20's three stages, then VGG layers at batch 1 (the style step's)
  c.conv_layers = ml_collections.ConfigDict({
      "shapes": ((128, 32, 16, 16, 3), (128, 16, 32, 32, 3), (128, 8, 64, 64, 3), (1, 128, 64, 64, 3),
                 (1, 32, 256, 256, 3), (1, 16, 512, 512, 3)),
      "steps": 5})
  c.worker_timeout_s = 1800
  return c
