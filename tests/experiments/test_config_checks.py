"""Every field of the embedding, detection and style-transfer configs is checked before any data is read.

Each bad field raises a ValueError naming the field, its value and what was
expected, from the experiment's `run`, before any dataset is generated (the
data_dir is never created) and before any image is read (the loaders fail).
"""

import importlib
import os

import pytest

from cnnjax.train import workdir as workdir_lib
from experiments import detection, embedding, style_transfer
from experiments.configs import embedding_default, style_default


def _set(config, field: str, value) -> None:
  *path, name = field.split(".")
  for key in path:
    config = config[key]
  setattr(config, name, value)


def _run_fails(run, config, tmp_path, message):
  config.data_dir = str(tmp_path / "data")
  with pytest.raises(ValueError, match=message):
    run(config, str(tmp_path / "work"))
  assert not os.path.exists(tmp_path / "data") and not os.path.exists(tmp_path / "work")


@pytest.mark.parametrize("field,value,message", [
    ("k", 1, r"config.k=1: expected an integer >= 2 \(images per identity: with 1 no anchor has a positive\)"),
    ("p", 1, r"config.p=1: expected an integer >= 2 \(identities per batch: with 1 no anchor has a negative\)"),
    ("batch_size", 63, r"config.batch_size=63: expected p \* k = 16 \* 4 = 64"),
    ("loss.name", "contrastive", r"config.loss.name='contrastive': expected one of \('semihard'"),
    ("loss.margin", 0.0, r"config.loss.margin=0.0: expected a margin > 0"),
    ("loss.margin", -0.2, r"config.loss.margin=-0.2: expected a number in \[0.0, inf\)"),
    ("model_kwargs.pair_head", "l1", r"config.model_kwargs.pair_head='l1': expected None with loss.name='semihard'"),
    ("model", "facenet", r"config.model='facenet': expected one of"),
    ("embedding_dim", 0, r"config.embedding_dim=0: expected an integer >= 1"),
    ("image_size", -1, r"config.image_size=-1: expected an integer >= 0"),
    ("image_size", 4, r"config.image_size=4: expected a size model='embedding_net' takes \(x has spatial size"),
    ("eval_batch_size", 0, r"config.eval_batch_size=0: expected an integer >= 1"),
    ("n_folds", 1, r"config.n_folds=1: expected an integer >= 2"),
    ("test_pairs", 5, r"config.test_pairs=5: expected at least n_folds=10 pairs"),
    ("enrolled_fraction", 1.0, r"config.enrolled_fraction=1.0: expected a number in \[0.0, 1.0\)"),
    ("enrolled_fraction", 0.0, r"config.enrolled_fraction=0.0: expected a fraction in \(0, 1\)"),
    ("recognition_far", 1.5, r"config.recognition_far=1.5: expected a number in \[0.0, 1.0\)"),
    ("projection", "umap", r"config.projection='umap': expected one of \('pca', 'tsne'\)"),
    ("pairs_file", "/no/such/pairs.txt", r"config.pairs_file='/no/such/pairs.txt': expected '' or the path"),
    ("optimizer.warmup_steps", 2000, r"config.optimizer.warmup_steps=2000: expected fewer steps than"),
])
def test_every_embedding_field_is_checked_before_any_data_is_read(tmp_path, field, value, message):
  config = embedding_default.get_config()
  _set(config, field, value)
  _run_fails(embedding.run, config, tmp_path, message)


def test_the_binary_loss_needs_a_pair_head(tmp_path):
  config = embedding_default.get_config()
  config.loss.name = "binary"
  _run_fails(embedding.run, config, tmp_path, r"config.model_kwargs.pair_head=None: expected one of \('l1', 'chi2'\)")


def _detection(name: str, **fields):
  config = importlib.import_module(f"experiments.configs.detection_{name}").get_config()
  for field, value in fields.items():
    _set(config, field, value)
  return config


@pytest.mark.parametrize("name,fields,message", [
    ("yolo", {"task": "ssd"}, r"config.task='ssd': expected one of"),
    ("yolo", {"num_anchors": 0}, r"config.num_anchors=0: expected an integer >= 1"),
    ("yolo", {"score_threshold": 1.5}, r"config.score_threshold=1.5: expected a number in \[0.0, 1.0\]"),
    ("yolo", {"nms_iou_threshold": -0.1}, r"config.nms_iou_threshold=-0.1: expected a number in \[0.0, 1.0\]"),
    ("yolo", {"max_detections": 0}, r"config.max_detections=0: expected an integer >= 1"),
    ("yolo", {"pre_nms_topk": 0}, r"config.pre_nms_topk=0: expected an integer >= 1"),
    ("yolo", {"eval_batch_size": 0}, r"config.eval_batch_size=0: expected an integer >= 1"),
    ("yolo", {"eval_limit": -1}, r"config.eval_limit=-1: expected an integer >= 0"),
    ("yolo", {"ignore_iou": 2.0}, r"config.ignore_iou=2.0: expected a number in \[0.0, 1.0\]"),
    ("yolo", {"lambda_noobj": -1.0}, r"config.lambda_noobj=-1.0: expected a number in \[0.0, inf\)"),
    ("yolo", {"max_objects": 2}, r"config.max_objects=2: expected >= 4, the most objects of a 'shapes' image"),
    ("yolo", {"image_size": -96}, r"config.image_size=-96: expected an integer >= 1"),
    ("yolo", {"image_size": 64}, r"config.image_size=64: expected 96, the size of the 'shapes' images"),
    ("yolo", {"dataset": "coco"}, r"config.dataset='coco': expected 'shapes' or a 'voc' config"),
    ("yolo", {"dataset": "voc/2007", "image_size": 100}, r"config.image_size=100: expected an input size"),
    ("yolo_resnet", {"dataset": "voc/2007", "image_size": 100},
     r"config.image_size=100: expected a multiple of the model's stride \(it gives a 13x13 grid\)"),
    ("yolo", {"model": "yolo9000"}, r"config.model='yolo9000': expected one of"),
    ("localization", {"dataset": "shapes"}, r"config.dataset='shapes': expected 'shapes_single'"),
    ("localization", {"image_size": 96}, r"config.image_size=96: expected 64"),
    ("landmarks", {"num_plot_images": -1}, r"config.num_plot_images=-1: expected an integer >= 0"),
    ("sliding_window", {"window": 30}, r"config.window=30: expected a window the conv\+pool stages halve evenly"),
    ("sliding_window", {"scales": (0.25,)}, r"config.window=32: expected <= the smallest scaled image \(24"),
    ("sliding_window", {"scales": ()}, r"config.scales=\(\): expected a non-empty tuple of positive"),
    ("sliding_window", {"window_features": ()}, r"config.window_features=\(\): expected a non-empty tuple"),
    ("sliding_window", {"num_crops": 0}, r"config.num_crops=0: expected an integer >= 1"),
    ("rcnn", {"fg_fraction": 1.5}, r"config.fg_fraction=1.5: expected a number in \[0.0, 1.0\]"),
    ("rcnn", {"warp_size": 4}, r"config.warp_size=4: expected >= 8, the stride of 3 conv\+pool stages"),
    ("rcnn", {"ss_scale": 0.0}, r"config.ss_scale=0.0: expected a positive felzenszwalb scale"),
    ("rcnn", {"num_train_rois": 0}, r"config.num_train_rois=0: expected an integer >= 1"),
    ("rcnn", {"num_test_proposals": 0}, r"config.num_test_proposals=0: expected an integer >= 1"),
    ("fast_rcnn", {"roi_pool_size": 40}, r"config.roi_pool_size=40: expected <= 24, the side of the feature map"),
    ("fast_rcnn", {"optimizer.name": "lamb"}, r"config.optimizer.name='lamb': expected one of"),
])
def test_every_detection_field_is_checked_before_any_data_is_read(tmp_path, name, fields, message):
  _run_fails(detection.run, _detection(name, **fields), tmp_path, message)


@pytest.mark.parametrize("name", ["yolo", "localization", "sliding_window", "rcnn"])
def test_each_detection_runner_checks_its_config_first(tmp_path, name):
  runner = {"yolo": "train_yolo", "localization": "train_localization", "sliding_window": "train_sliding_window",
            "rcnn": "train_rcnn"}[name]
  module = importlib.import_module(f"experiments.detection.{runner}")
  _run_fails(module.run, _detection(name, eval_batch_size=0), tmp_path, r"config.eval_batch_size=0")


@pytest.fixture
def no_images(monkeypatch):
  """Style transfer must fail before it reads an image or builds the network."""
  def fail(*args, **kwargs):
    raise AssertionError("an image or the weights were read before the config was checked")
  monkeypatch.setattr(style_transfer, "load_image", fail)
  monkeypatch.setattr(style_transfer, "resolve_weights", fail)


@pytest.mark.parametrize("field,value,message", [
    ("image_size", -3, r"config.image_size=-3: expected an integer >= 1"),
    ("image_size", 0, r"config.image_size=0: expected an integer >= 1"),
    ("content_layer", "relu9_9", r"config.content_layer='relu9_9': expected a layer of vgg19"),
    ("style_layers", ("relu1_1", "fc7"), r"config.style_layers=\('relu1_1', 'fc7'\): expected a non-empty tuple"),
    ("style_layers", (), r"config.style_layers=\(\): expected a non-empty tuple"),
    ("style_weights", (1.0,), r"config.style_weights=\(1.0,\): expected one weight per style layer"),
    ("style_weights", (0.2, 0.2, -0.2, 0.2, 0.2), r"config.style_weights\[2\]=-0.2: expected a number in \[0.0, inf"),
    ("alpha", -1.0, r"config.alpha=-1.0: expected a number in \[0.0, inf\)"),
    ("tv_weight", -1.0, r"config.tv_weight=-1.0: expected a number in \[0.0, inf\)"),
    ("learning_rate", 0.0, r"config.learning_rate=0.0: expected a positive number"),
    ("num_steps", 0, r"config.num_steps=0: expected an integer >= 1"),
    ("log_every", 0, r"config.log_every=0: expected an integer >= 1"),
    ("checkpoint_every", -1, r"config.checkpoint_every=-1: expected an integer >= 0"),
    ("optimizer", "sgd", r"config.optimizer='sgd': expected one of \('adam', 'lbfgs'\)"),
    ("pool", "min", r"config.pool='min': expected one of \('max', 'avg'\)"),
    ("parameterization", "tanh", r"config.parameterization='tanh': expected one of"),
    ("color", "sepia", r"config.color='sepia': expected one of"),
    ("dtype", "float64", r"config.dtype='float64': expected one of"),
    ("arch", "vgg11", r"config.arch='vgg11': expected one of \('vgg16', 'vgg19'\)"),
    ("scales", (1.0, 0.5), r"config.scales=\(1.0, 0.5\): expected increasing fractions"),
    ("noise_ratio", 1.5, r"config.noise_ratio=1.5: expected a number in \[0.0, 1.0\]"),
    ("content", "/no/such/image.png", r"config.content='/no/such/image.png': expected an image file or one of"),
    ("weights", "/no/such/vgg19.pth", r"config.weights='/no/such/vgg19.pth': expected '' or a VGG weights file"),
    ("checkpoint_dir", "/no/such/dir", r"config.checkpoint_dir='/no/such/dir': expected '' or the workdir"),
    ("memory_limit_gb", -2.0, r"config.memory_limit_gb=-2.0: expected -1 .*, 0 \(no check\) or a limit"),
])
def test_every_style_field_is_checked_before_any_image_is_read(tmp_path, no_images, field, value, message):
  config = style_default.get_config()
  _set(config, field, value)
  with pytest.raises(ValueError, match=message):
    style_transfer.run(config, str(tmp_path / "work"))
  assert not os.path.exists(tmp_path / "work")


def test_a_style_image_too_large_for_memory_fails_before_anything_is_allocated(tmp_path, no_images):
  config = style_default.get_config()
  config.image_size, config.memory_limit_gb = 4096, 2.0
  with pytest.raises(ValueError, match=r"config.image_size=4096: expected a size whose style step fits in memory; "
                                       r"it needs an estimated \d+\.\d\d GiB, over the limit of 2.00 GiB "
                                       r"\(config.memory_limit_gb=2.0\); image_size=\d+ fits"):
    style_transfer.run(config, str(tmp_path / "work"))
  assert not os.path.exists(tmp_path / "work")


def test_the_memory_limit_is_bookkeeping():
  assert "memory_limit_gb" in workdir_lib.BOOKKEEPING
