"""LFW (TFDS catalog, prepared in data_dir) with the standard pairs protocol.

  python -m experiments.embedding --config=experiments/configs/embedding_lfw.py \
      --config.data_dir=/data/tfds --config.pairs_file=/data/lfw/pairs.txt --workdir=/tmp/lfw

Training uses the people the pairs file never names; the file's pairs, in its
10 folds, are the test (and the validation that sets the recognition threshold).
TFDS's lfw records keep the person's name but not the file number, so image k
of a person is that person's k-th record in the data source's order.
"""

from experiments.configs import embedding_default


def get_config():
  config = embedding_default.get_config()
  config.dataset = "lfw"
  config.image_size = 64
  config.train_split = config.val_split = config.test_split = "train"  # TFDS lfw has a single split
  config.pairs_file = ""  # required: path to pairs.txt
  config.model_kwargs.widths = (32, 64, 128, 256)
  config.num_steps = 10000
  return config
