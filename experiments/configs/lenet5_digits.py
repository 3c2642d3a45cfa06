"""The main job: modern LeNet-5 on the embedded digits (the default of experiments.classification)."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = "lenet5"
  config.model_kwargs = ml_collections.ConfigDict()
  config.dtype = "float32"  # compute dtype; 'bfloat16' on accelerators (params stay float32)

  config.dataset = "digits"
  config.data_dir = ""  # '' = $CNNJAX_DATA_DIR or ~/.cache/cnnjax/datasets
  config.train_split = "train"
  config.eval_split = "test"
  config.image_size = 0  # 0 keeps the dataset's size; else resize on the host (variable-size datasets)
  config.classes = ()  # a subset of class ids, relabelled 0..k-1; () = all
  config.examples_per_class = 0  # with `classes`: few-shot training set; 0 = all
  config.augment = ({"name": "random_crop", "pad": 2},)  # cnnjax.data.augment.build spec (on the device)
  # Host transforms (cnnjax.data.host_input): 'resize' to image_size, or 'inception': Inception crop of
  # crop_scale of the area and crop_ratio aspect + flip for training, shorter side to eval_resize
  # (0: image_size * 256/224) + centre crop for evaluation, JPEGs decoded at a reduced scale.
  config.host_crop = "resize"
  config.crop_scale = (0.08, 1.0)
  config.crop_ratio = (3 / 4, 4 / 3)
  config.eval_resize = 0
  config.data_workers = 0  # grain worker processes decoding and cropping on the host; 0 = in the main process
  config.channel_mean = ()  # normalisation constants in [0, 1] units; () = estimate them from a sample
  config.channel_std = ()
  config.stats_sample = 4096  # training images of the seeded sample that estimates them
  # RandAugment: num_ops > 0 ops per example, at magnitude in [0, 10]; 0 ops = off
  config.randaugment = ml_collections.ConfigDict(dict(num_ops=0, magnitude=9.0))
  config.mixup_alpha = 0.0  # > 0: mixup with lam ~ Beta(alpha, alpha), labels mixed alike
  config.cutmix_alpha = 0.0  # > 0: CutMix, labels weighted by the pasted area
  config.mix_switch_prob = 0.5  # with both on: the chance an example gets CutMix rather than mixup

  config.batch_size = 64
  config.eval_batch_size = 200
  config.num_steps = 800
  config.optimizer = ml_collections.ConfigDict(
      dict(name="adam", learning_rate=3e-3, schedule="warmup_cosine", warmup_steps=50, weight_decay=0.0,
           momentum=0.9)
  )
  config.label_smoothing = 0.0
  config.aux_weight = 0.3  # weight of auxiliary classifiers (GoogLeNet)
  config.skip_nonfinite = False
  config.ema_decay = 0.0  # > 0: also keep and evaluate a moving average of the parameters (ema_test_accuracy)
  config.grad_accum_steps = 1  # micro-batches per update (batch_size is the whole batch)
  config.profile_steps = ()  # (first, last): a jax.profiler trace of those steps in workdir/profile
  config.tensorboard = True  # also write TensorBoard event files

  config.log_every = 50
  config.eval_every = 200
  config.checkpoint_every = 200
  config.keep_checkpoints = 2
  config.best_metric = "test_accuracy"
  config.best_mode = "max"
  config.export = False  # also write workdir/export/classifier.jax: the inference function via jax.export

  config.transfer = ml_collections.ConfigDict(
      dict(init_from="", reinit=(), freeze=(), freeze_stages=0, cached_head="")
  )  # init_from: a workdir whose latest checkpoint starts this run; cached_head: train only that
  # submodule (e.g. 'fc3') on features the frozen trunk computes once
  config.distributed = ml_collections.ConfigDict(
      dict(coordinator_address="", num_processes=0, process_id=-1)
  )  # several hosts; also read from JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID
  return config
