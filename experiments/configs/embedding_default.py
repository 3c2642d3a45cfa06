"""Semi-hard triplet training of `embedding_net` on `synthetic_faces` (the default of experiments.embedding)."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = "embedding_net"
  config.embedding_dim = 128  # passed to models.create as num_classes
  config.model_kwargs = ml_collections.ConfigDict(dict(widths=(16, 32, 64, 128), blocks_per_stage=1))
  config.dtype = "float32"

  config.dataset = "synthetic_faces"
  config.data_dir = ""  # '' = $CNNJAX_DATA_DIR or ~/.cache/cnnjax/datasets
  config.image_size = 0  # 0 keeps the dataset's size; else resize on the host (LFW: 64)
  # Identity-disjoint parts: a dataset split each, optionally restricted to some identities.
  config.train_split, config.train_labels = "train", ()
  config.val_split, config.val_labels = "validation", ()
  config.test_split, config.test_labels = "test", ()
  config.pairs_file = ""  # an LFW-style pairs file: verify its pairs (and folds); train on the people it omits
  config.augment = ()  # cnnjax.data.augment.build spec; the faces already vary pose and lighting

  config.loss = ml_collections.ConfigDict(dict(
      name="semihard",  # semihard | batch_hard | batch_all | random | binary
      margin=0.2, squared=True,  # squared distances on unit vectors, FaceNet's alpha
      balanced=True))  # binary: weigh same and different pairs equally
  config.p = 16  # identities per batch
  config.k = 4  # images per identity
  config.batch_size = 64  # = p * k
  config.num_steps = 2000
  config.optimizer = ml_collections.ConfigDict(dict(
      name="adamw", learning_rate=3e-3, schedule="warmup_cosine", warmup_steps=100, weight_decay=1e-4,
      momentum=0.9))

  config.val_pairs = 2000  # validation pairs: threshold for recognition, metrics during training
  config.test_pairs = 6000  # test pairs (half same identity), split into n_folds folds
  config.n_folds = 10
  config.enrolled_fraction = 0.5  # test people enrolled with one image; the others are 'unknown'
  config.recognition_far = 1e-3  # pair FAR on validation that sets the strict recognition threshold
  config.projection = "pca"  # pca | tsne
  config.eval_batch_size = 400

  config.log_every = 50
  config.eval_every = 500
  config.checkpoint_every = 500
  config.keep_checkpoints = 2
  return config
