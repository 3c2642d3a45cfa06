"""Neural style transfer: astronaut in the style of the immunohistochemistry stain, VGG-19 features."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.content = "astronaut"  # a skimage.data name or an image path
  c.style = "immunohistochemistry"
  c.image_size = 256  # square side of the generated image
  c.arch = "vgg19"
  c.pool = "avg"  # Gatys et al. replace VGG's max pooling by average pooling
  c.weights = ""  # torchvision .pth/.safetensors or Keras .h5 VGG file; '' -> checkpoint_dir or random
  c.checkpoint_dir = ""  # workdir of a classification run with a VGG model
  c.content_layer = "relu4_2"
  # Gatys et al.'s conv{b}_1 style layers, taken after their ReLU as Caffe's in-place ReLU does.
  c.style_layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
  c.style_weights = (0.2, 0.2, 0.2, 0.2, 0.2)
  c.alpha = 1.0  # alpha / beta = 1e-3, the ratio of Gatys et al.'s figures
  c.beta = 1e3
  c.tv_weight = 0.0
  c.optimizer = "adam"  # 'adam' | 'lbfgs'
  c.learning_rate = 0.01  # Adam's step in [0, 1] pixel units
  c.parameterization = "clip"  # 'clip' | 'sigmoid'
  c.num_steps = 150  # per scale
  c.scales = (0.5, 1.0)  # coarse-to-fine
  c.noise_ratio = 0.2
  c.color = "none"  # 'none' | 'histogram' | 'luminance'
  c.log_every = 10
  c.checkpoint_every = 50
  c.dtype = "float32"
  c.memory_limit_gb = -1.0  # the style step's estimated memory must fit: -1 = 90% of the device's, 0 = no check
  return c
