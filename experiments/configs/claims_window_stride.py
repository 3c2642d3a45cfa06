"""The sliding-window stride trade-off (issue 21, item 6) on the embedded `shapes`.

  python -m experiments.claims.window_stride --workdir=/tmp/window_stride

One training of the default window classifier (800 steps), then detection at each of `claim.strides`:
mAP on `eval_limit` test images (convolutional form), windows per image, and seconds per image of the
convolutional and the naive (crop every window) detector, the naive one timed on `claim.naive_images`.
"""

import ml_collections

from experiments.configs import detection_sliding_window


def get_config() -> ml_collections.ConfigDict:
  config = detection_sliding_window.get_config()
  config.eval_limit = 200
  config.naive_eval_limit = 10  # the training run's own naive-vs-convolutional check
  config.num_plot_images = 4
  config.claim = ml_collections.ConfigDict(dict(
      strides=(2, 4, 8, 16),  # pixels between windows; the network's own stride is 4 (2 conv+pool stages)
      naive_images=6,  # test images the naive detector is timed (and checked against the convolutional one) on
      naive_batch_size=2,  # images a naive batch: at stride 2 each holds ~4,300 windows of 32x32
  ))
  return config
