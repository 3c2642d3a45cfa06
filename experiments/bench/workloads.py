"""The workloads the benchmark times, built from the code users run.

A classifier's train step is `cnnjax.train.step.make_train_step` on the
classification loss, compiled by `cnnjax.train.parallel.compile_train_step` over
a data mesh (state replicated and donated, batch split); the style step is the
one `cnnjax.style.transfer.stylize` runs; NMS is `cnnjax.detection.nms` under
jit. Each workload object runs one step per call and blocks until it is done.
"""

from collections.abc import Iterator, Mapping, Sequence
import functools
import itertools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cnnjax import models
from cnnjax.data import mixing
from cnnjax.data.pipeline import prefetch_to_mesh
from cnnjax.data.prepare import make_augment_fn
from cnnjax.detection.boxes import nms
from cnnjax.ops import kernels
from cnnjax.style.extractor import WIDTHS, init_vgg_params, vgg_features
from cnnjax.style.transfer import compiled_functions
from cnnjax.train import parallel
from cnnjax.train.classify import cross_entropy_loss
from cnnjax.train.state import create_train_state
from cnnjax.train.step import make_eval_step, make_train_step
from experiments.bench.timing import peak_memory, reset_peak_memory


def device_mesh(devices: Sequence[jax.Device]) -> Mesh:
  """A one-axis `'data'` mesh over `devices` (a prefix of the local devices, for scaling runs)."""
  return Mesh(np.asarray(devices), (parallel.DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def _compile(fn, *args) -> tuple[Any, float]:
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  return compiled, time.perf_counter() - t0


def program_bytes(compiled) -> int | None:
  """What XLA plans for one compiled program on one device: arguments + outputs + temporaries - aliased."""
  m = compiled.memory_analysis()
  if m is None:
    return None
  return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


class Classifier:
  """Train and inference steps of a zoo model on one fixed random batch.

  Attributes:
    compile_s: `{'train': s, 'infer': s}` lowering + XLA compilation.
    program_bytes: the train step's planned memory per device (`program_bytes`).
    host_batch: the batch as NumPy (`'image'` float32 NHWC, `'label'` int32).
    state: the current `TrainState` (donated and replaced by every train step).
    metrics: the last train step's metrics (`'loss'` of the parameters before it).

  `options` turns on training options as the classification config names
  them (`TRAIN_OPTIONS`), to time the step with each: e.g. `{'mixup_alpha': 0.2}`,
  `{'randaugment': (2, 9)}` (num_ops, magnitude), `{'ema_decay': 0.999}`, `{'grad_accum_steps': 4}`.
  """

  def __init__(self, model_name: str, *, batch_size: int, image_shape: Sequence[int], num_classes: int = 10,
               dtype: str = "float32", devices: Sequence[jax.Device] | None = None, learning_rate: float = 0.01,
               momentum: float = 0.9, seed: int = 0, options: Mapping[str, Any] | None = None):
    if len(image_shape) != 3:
      raise ValueError(f"image_shape={tuple(image_shape)}: expected (H, W, C)")
    self.mesh = device_mesh(devices or jax.local_devices())
    if batch_size < 1 or batch_size % self.mesh.size:
      raise ValueError(f"batch_size={batch_size}: expected a positive multiple of the {self.mesh.size} devices")
    self.dtype = jnp.dtype(dtype)
    self.model = models.create(model_name, num_classes=num_classes, dtype=self.dtype)
    self.tx = optax.sgd(learning_rate, momentum=momentum)
    rng = np.random.default_rng(seed)
    self.host_batch = {"image": rng.standard_normal((batch_size, *image_shape), np.float32),
                       "label": rng.integers(0, num_classes, batch_size).astype(np.int32)}
    reset_peak_memory()
    options = dict(options or {})
    unknown = sorted(set(options) - set(TRAIN_OPTIONS))
    if unknown:
      raise ValueError(f"options {unknown}: expected names among {TRAIN_OPTIONS}")
    state = create_train_state(self.model, self.tx, jax.random.key(seed), jnp.asarray(self.host_batch["image"]),
                               ema_decay=options.get("ema_decay", 0.0))
    self.state = parallel.replicate(state, self.mesh)
    self.batch = self.put(self.host_batch)
    step = make_train_step(cross_entropy_loss(num_classes), augment_fn=_augment_fn(options, num_classes, self.dtype),
                           grad_accum_steps=options.get("grad_accum_steps", 1))
    train = parallel.compile_train_step(step, self.mesh)
    infer = parallel.compile_eval_step(make_eval_step(lambda outputs, batch: {"logits": outputs}), self.mesh)
    self._train, train_s = _compile(train, self.state, self.batch)
    self._infer, infer_s = _compile(infer, self.state, self.batch)
    self.compile_s = {"train": train_s, "infer": infer_s}
    self.program_bytes = program_bytes(self._train)
    self.metrics = None

  def memory(self) -> dict:
    """Peak memory since construction (`experiments.bench.timing.peak_memory`); call after a step of each kind."""
    return peak_memory(self.mesh.devices.flat[0])

  def put(self, host_batch: Mapping[str, np.ndarray]) -> dict:
    """A host batch on the mesh, split over `'data'`, images in the compute dtype."""
    batch = {**host_batch, "image": np.asarray(host_batch["image"]).astype(self.dtype)}
    return jax.device_put(batch, NamedSharding(self.mesh, P(parallel.DATA_AXIS)))

  def train_step(self, batch: dict | None = None) -> None:
    self.state, self.metrics = self._train(self.state, self.batch if batch is None else batch)
    jax.block_until_ready((self.state, self.metrics))

  def infer_step(self) -> None:
    jax.block_until_ready(self._infer(self.state, self.batch))

  def fed_train_steps(self, host_batches: Iterator[Mapping[str, np.ndarray]] | None = None) -> Iterator[None]:
    """Train steps on host batches moved to the devices by `prefetch_to_mesh` (transfer included): copies of the
    fixed batch, or `host_batches` (e.g. the input pipeline's uint8 images), cast there to the step's dtypes."""
    if host_batches is None:  # already in the step's dtypes: nothing to cast
      host = {**self.host_batch, "image": self.host_batch["image"].astype(self.dtype)}
      host_batches, cast = itertools.cycle([jax.tree.map(np.copy, host) for _ in range(4)]), lambda b: b
    else:
      cast = jax.jit(lambda b: {"image": b["image"].astype(self.dtype), "label": b["label"].astype(jnp.int32)})
    batches = prefetch_to_mesh(host_batches, self.mesh)
    try:
      for batch in batches:
        self.train_step(cast(batch))
        yield
    finally:
      batches.close()  # stops the prefetch thread


TRAIN_OPTIONS = ("mixup_alpha", "cutmix_alpha", "mix_switch_prob", "randaugment", "ema_decay", "grad_accum_steps")


def _augment_fn(options: Mapping[str, Any], num_classes: int, dtype: Any):
  """The classification experiment's on-device augmentation for `options` (None when it has nothing to do)."""
  mix = mixing.make_mix_fn(num_classes, mixup_alpha=options.get("mixup_alpha", 0.0),
                           cutmix_alpha=options.get("cutmix_alpha", 0.0),
                           switch_prob=options.get("mix_switch_prob", 0.5))
  randaugment = tuple(options["randaugment"]) if options.get("randaugment") else None
  if mix is None and randaugment is None:
    return None
  # The batch is random normal noise: identity normalisation, the images' values are beside the point.
  return make_augment_fn(0.0, 1.0, (), dtype, randaugment=randaugment, mix_fn=mix)


class StyleStep:
  """One Adam step of Gram-matrix style transfer on a random-weight VGG (the step `stylize` runs).

  Content and style images are uniform noise of `image_size` squared; the
  generated image starts as the content image.
  """

  def __init__(self, *, image_size: int, arch: str = "vgg19", widths: Sequence[int] = WIDTHS,
               content_layer: str = "relu4_2", style_layers: Mapping[str, float] | None = None,
               alpha: float = 1.0, beta: float = 1e3, learning_rate: float = 0.01, dtype: str = "float32",
               seed: int = 0):
    self.style_layers = dict(style_layers or {f"relu{b}_1": 0.2 for b in range(1, 6)})
    self.content_layer = content_layer
    taps = [content_layer, *self.style_layers]
    self.params = init_vgg_params(jax.random.key(seed), arch, widths=tuple(widths), taps=taps)
    extract = functools.partial(vgg_features, pool="avg", preprocessing="torch", dtype=jnp.dtype(dtype))
    self.fns = compiled_functions(extract, content_layer, tuple(self.style_layers.items()), alpha, beta, 0.0,
                                  "adam", learning_rate, "clip")
    rng = np.random.default_rng(seed)
    self.content, self.style = (rng.uniform(0, 1, (image_size, image_size, 3)).astype(np.float32)
                                for _ in range(2))
    reset_peak_memory()
    self.targets = self.fns.targets(self.params, jnp.asarray(self.content), jnp.asarray(self.style))
    self.image = jnp.asarray(self.content)
    self.opt_state = self.fns.tx.init(self.image)
    self._step, self.compile_s = _compile(self.fns.step, self.params, self.image, self.opt_state, self.targets)
    self.value = None
    self.step()
    self.memory = peak_memory()

  def step(self) -> None:
    self.image, self.opt_state, self.value = self._step(self.params, self.image, self.opt_state, self.targets)
    jax.block_until_ready(self.image)


class ConvLayer:
  """One stride-1 'same' conv layer, NHWC float32: forward, and forward with both gradients, on XLA's
  convolution ('xla') and on `cnnjax.ops.kernels` ('kernel', CPU). `steps[(pass, path)]` runs one call."""

  def __init__(self, batch: int, size: int, cin: int, cout: int, k: int, *, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((batch, size, size, cin)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((k, k, cin, cout)) / k, jnp.float32)
    dy = jnp.asarray(rng.standard_normal((batch, size, size, cout)), jnp.float32)
    pads = ((k - 1) // 2, k // 2), ((k - 1) // 2, k // 2)
    self.steps = {}
    paths = {"xla": functools.partial(jax.lax.conv_general_dilated, window_strides=(1, 1), padding=pads,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC")),
             "kernel": functools.partial(kernels.conv_nhwc, pads=pads)}
    for path, conv in paths.items():
      forward = jax.jit(conv)
      grads = jax.jit(lambda x, w, dy, conv=conv: jax.vjp(conv, x, w)[1](dy))
      self.steps["forward", path] = functools.partial(_run, forward, x, w)
      self.steps["train", path] = functools.partial(_run, grads, x, w, dy)


def _run(fn, *args) -> None:
  jax.block_until_ready(fn(*args))


class NMS:
  """`cnnjax.detection.nms` under jit on `num_boxes` random boxes (sides 8-64 in a 512 square)."""

  def __init__(self, num_boxes: int, *, iou_threshold: float = 0.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 448, (num_boxes, 2))
    wh = rng.uniform(8, 64, (num_boxes, 2))
    self.boxes = jnp.asarray(np.concatenate([xy, xy + wh], axis=1), jnp.float32)
    self.scores = jnp.asarray(rng.uniform(0, 1, num_boxes), jnp.float32)
    fn = jax.jit(functools.partial(nms, iou_threshold=iou_threshold))
    self._nms, self.compile_s = _compile(fn, self.boxes, self.scores)
    self.step()

  def step(self) -> None:
    self.keep = jax.block_until_ready(self._nms(self.boxes, self.scores))
