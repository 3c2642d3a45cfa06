"""Input benchmark only: grain + scaled JPEG decoding against tf.data on ImageNet-like JPEGs, and start-up vs size.

  python -m experiments.benchmark --config=experiments/configs/benchmark_input.py --workdir=/tmp/bench_input
"""

import ml_collections

from experiments.configs import benchmark_default


def input_section() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      enabled=True,
      data_dir="",  # '' = workdir/data (generated there on first use)
      dataset="1k",  # experiments.bench.jpeg_dataset config: 'tiny', '1k' or '10k'
      image_size=224,
      batch_size=256,
      workers=(0, 1, 2, 4),  # grain worker processes (0: in the main process); tf.data threads for those > 0
      warmup=2,  # untimed batches per count (the first starts the workers)
      batches=8,  # timed batches per count
      rounds=3,  # every pipeline is timed once a round, in turns; rows are medians
      tf=True,  # the tf.data reference, where TensorFlow imports (a note otherwise)
      tf_pythonpath="",  # extra PYTHONPATH where tensorflow-cpu is installed, if not in this environment
      target_images_per_s=5_500,  # one H100 training ResNet-50 with cnnjax's step
      startup=True,
      startup_datasets=("1k", "10k"),  # the catalog recipe's start-up with each training-set size
      startup_model="resnet18",
      startup_image_size=224,
      startup_batch_size=32,
      startup_steps=2,
      timeout_s=3600,
  ))


def get_config() -> ml_collections.ConfigDict:
  config = benchmark_default.get_config()
  config.input_only = True
  config.input = input_section()
  return config
