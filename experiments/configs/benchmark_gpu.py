"""Benchmark on an accelerator: ResNet-50 at 224x224 in bfloat16 (float32 params), fed from the host too."""

from experiments.configs import benchmark_default


def get_config():
  c = benchmark_default.get_config()
  c.model_names = ("resnet50", "resnet20")
  c.models.resnet50.batch_sizes = (256,)
  c.models.resnet20.batch_sizes = (1024,)
  c.num_classes = 1000
  c.dtypes = ("bfloat16",)  # add float32 with --config.dtypes='("bfloat16","float32")' (needs ~2x the memory)
  c.warmup = 3
  c.steps = 20
  c.turn = 10
  c.fed_steps = 20
  c.jpeg_fed.update(dict(dataset="1k", workers=12))  # the pipeline from 300-500 px JPEGs (issue 17), 16-core host
  c.torch_formats = ("nhwc",)  # channels_last: PyTorch's fast layout for convolutions on GPUs
  c.nms.num_boxes = (100, 1000, 10000)
  c.style.image_size = 512
  c.style.steps = 20
  return c
