"""YOLO's mAP against the number of k-means anchors (issue 21, item 6) on the embedded `shapes`.

  python -m experiments.claims.anchors --workdir=/tmp/anchors

4 trainings of the default YOLO (800 steps each; BUILD.md gives the measured time);
change the counts with `claim.anchor_counts`, the length with `num_steps`.
"""

import ml_collections

from experiments.configs import detection_yolo


def get_config() -> ml_collections.ConfigDict:
  config = detection_yolo.get_config()
  config.eval_every = 0  # one test evaluation, at the end
  config.num_plot_images = 4
  config.claim = ml_collections.ConfigDict(dict(
      anchor_counts=(1, 3, 5, 9),  # one YOLO per count, anchors from seeded k-means on the training boxes
      collision_images=2000,  # training images whose objects are counted for cell / anchor-slot collisions
  ))
  return config
