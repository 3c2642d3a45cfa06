"""Neural style transfer by optimising the pixels (Gatys et al. 2015).

The generated image starts from the content image mixed with uniform noise
(`noise_ratio`) and is optimised with Adam or L-BFGS (`optax.lbfgs` with its
zoom line search) under `alpha * J_content + beta * J_style + tv_weight * TV`.
Pixels stay in [0, 1] either by clipping after every step
(`parameterization='clip'`, projected gradient) or by optimising unconstrained
logits with `image = sigmoid(z)` (`'sigmoid'`, smoother for L-BFGS's curvature
pairs). Each resolution of the coarse-to-fine pyramid (`scales`) compiles one
step function (the targets are arguments, not constants) and runs `num_steps`
steps; the result is upsampled bilinearly to start the next one.
"""

from collections.abc import Callable, Mapping, Sequence
import functools
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from skimage import color, exposure
from tqdm.auto import tqdm

from cnnjax.style.costs import content_cost, gram_matrix, style_cost_from_grams, total_cost, total_variation
from cnnjax.train import parallel
from cnnjax.train.step import NonFiniteLossError

STYLE_LAYERS = {f"relu{b}_1": 0.2 for b in range(1, 6)}
CONTENT_LAYER = "relu4_2"
Extractor = Callable[[Any, jax.Array, Sequence[str]], Mapping[str, jax.Array]]


class State(NamedTuple):
  """Where a run stands: global step, current image (at the current scale), optimizer leaves."""
  step: int
  image: np.ndarray
  opt_leaves: list


class Result(NamedTuple):
  image: np.ndarray  # [H, W, 3] in [0, 1]
  history: list  # dicts with step, content, style, tv, total
  initial: dict  # the costs of the starting image at full resolution
  final: dict  # the costs of the result at full resolution
  steps_per_second: float  # at the last (full) scale, compilation excluded


def resize(image: jax.Array, hw: Sequence[int]) -> jax.Array:
  """Bilinear (antialiased when shrinking) resize of `[H, W, C]` to `hw`."""
  return jax.image.resize(image, (*hw, image.shape[-1]), "linear", antialias=True)


def preserve_color(content: np.ndarray, style: np.ndarray, mode: str):
  """Colour preservation (Gatys et al. 2016) applied before the optimisation.

  'histogram': the style image's colour histograms are matched to the content's.
  'luminance': both images become their (replicated) YIQ luminance, the style's
  mean/std matched to the content's; `restore_color` puts the content's I/Q back.
  Returns (content, style) to optimise with.
  """
  if mode == "none":
    return content, style
  if mode == "histogram":
    return content, np.clip(exposure.match_histograms(style, content, channel_axis=-1), 0, 1)
  if mode == "luminance":
    y_c, y_s = color.rgb2yiq(content)[..., 0], color.rgb2yiq(style)[..., 0]
    y_s = (y_s - y_s.mean()) / (y_s.std() + 1e-8) * y_c.std() + y_c.mean()
    rep = lambda y: np.repeat(np.clip(y, 0, 1)[..., None], 3, axis=-1)
    return rep(y_c), rep(y_s)
  raise ValueError(f"color={mode!r}: expected 'none', 'histogram' or 'luminance'")


def restore_color(result: np.ndarray, content: np.ndarray, mode: str) -> np.ndarray:
  """After a 'luminance' run: the result's luminance with the content's chrominance."""
  if mode != "luminance":
    return result
  yiq = color.rgb2yiq(content)
  yiq[..., 0] = result.mean(axis=-1)
  return np.clip(color.yiq2rgb(yiq), 0, 1).astype(np.float32)


def stylize(extract: Extractor, params: Any, content: np.ndarray, style: np.ndarray, *, num_steps: int = 200,
            optimizer: str = "adam", learning_rate: float = 0.02, content_layer: str = CONTENT_LAYER,
            style_layers: Mapping[str, float] = STYLE_LAYERS, alpha: float = 10.0, beta: float = 40.0,
            tv_weight: float = 0.0, noise_ratio: float = 0.2, parameterization: str = "clip",
            scales: Sequence[float] = (1.0,), color_mode: str = "none", seed: int = 0, log_every: int = 10,
            start: State | None = None, on_checkpoint: Callable[[State], None] | None = None,
            checkpoint_every: int = 0, on_log: Callable[[dict], None] | None = None,
            progress: bool = True) -> Result:
  """Optimises an image with `content`'s content and `style`'s Gram statistics.

  Args:
    extract: `extract(params, images [N,H,W,3] in [0,1], taps) -> {tap: [N,h,w,c]}`,
      e.g. `functools.partial(vgg_features, pool='avg')`.
    params: the network's parameters; an argument of the jitted functions,
      not a constant folded into them (VGG-19's would slow compilation down).
    content, style: `[H, W, 3]` floats in [0, 1]; the style image is resized to
      the content's size at every scale (so the Gram normalisations agree).
    num_steps: optimizer steps at each scale.
    scales: coarse-to-fine pyramid, fractions of the content size, ending at 1.
    color_mode: 'none', 'histogram' or 'luminance' (see `preserve_color`).
    start: a `State` saved by `on_checkpoint` to resume from.
    on_log: called with each history entry (every `log_every` steps and at the end).
  Returns:
    the final image, the cost history, the costs of the starting and final
    images at full resolution, and the optimizer steps per second at full
    resolution (compilation excluded).
  """
  _check_args(content, style, optimizer, parameterization, scales, num_steps, style_layers, content_layer)
  orig_content = content
  content, style = preserve_color(np.asarray(content, np.float32), np.asarray(style, np.float32), color_mode)
  fns = compiled_functions(extract, content_layer, tuple(style_layers.items()), alpha, beta, tv_weight,
                           optimizer, learning_rate, parameterization)
  targets_fn = functools.partial(fns.targets, params)
  evaluate = functools.partial(fns.evaluate, params)
  step = functools.partial(fns.step, params)
  from_image, to_image = fns.from_image, fns.to_image

  full_hw = content.shape[:2]
  sizes = [tuple(max(1, round(n * s)) for n in full_hw) for s in scales]
  step_i = 0 if start is None else start.step
  noise = np.asarray(jax.random.uniform(jax.random.key(seed), content.shape))
  initial_image = (1 - noise_ratio) * content + noise_ratio * noise
  full_targets = targets_fn(jnp.asarray(content), resize(jnp.asarray(style), full_hw))
  costs = lambda img: {k: float(v) for k, v in evaluate(from_image(jnp.asarray(img)), full_targets).items()}
  initial = costs(initial_image)
  image = start.image if start is not None else initial_image
  history, timed_steps, timed_s, pending = [], 0, 0.0, start
  bar = tqdm(total=num_steps * len(sizes), initial=step_i, disable=not progress, desc="style")

  def log(z, targets):
    entry = {"step": step_i, **{k: float(v) for k, v in evaluate(z, targets).items()}}
    if not np.isfinite(entry["total"]):
      raise NonFiniteLossError(f"the cost is {entry['total']} at step {step_i}; stopping. The last good checkpoint "
                               "is kept; lower the learning rate or check the images")
    history.append(entry)
    if on_log:
      on_log(entry)
    bar.set_postfix(total=f"{entry['total']:.4g}")

  for level, hw in enumerate(sizes):
    end = (level + 1) * num_steps
    if step_i >= end:
      continue
    resumed = pending is not None and tuple(np.shape(image)[:2]) == hw and pending.opt_leaves
    image = jnp.clip(resize(jnp.asarray(image, jnp.float32), hw), 0, 1)
    targets = targets_fn(resize(jnp.asarray(content), hw), resize(jnp.asarray(style), hw))
    z = from_image(image)
    opt_state = fns.tx.init(z)
    if resumed:
      opt_state = jax.tree.unflatten(jax.tree.structure(opt_state), [jnp.asarray(l) for l in pending.opt_leaves])
    pending, timed_steps, timed_s = None, 0, 0.0  # the rate reported is the last (full) scale's
    if step_i % num_steps == 0 and not (history and history[-1]["step"] == step_i):
      log(z, targets)
    while step_i < end:
      t0 = time.perf_counter()
      z, opt_state, _ = step(z, opt_state, targets)
      jax.block_until_ready(z)
      if step_i % num_steps:  # the first step of a scale includes its compilation
        timed_steps, timed_s = timed_steps + 1, timed_s + time.perf_counter() - t0
      step_i += 1
      bar.update()
      if step_i % log_every == 0 or step_i == end:
        log(z, targets)
      if on_checkpoint and checkpoint_every and (step_i % checkpoint_every == 0 or step_i == end):
        current = np.asarray(to_image(z))
        if not np.isfinite(current).all():  # never checkpoint a broken image, even between logs
          raise NonFiniteLossError(f"the image is not finite at step {step_i}; stopping. The last good checkpoint "
                                   "is kept; lower the learning rate")
        on_checkpoint(State(step_i, current, [np.asarray(l) for l in jax.tree.leaves(opt_state)]))
    image = np.asarray(to_image(z))
  bar.close()
  final = costs(image)
  image = restore_color(np.asarray(image, np.float32), np.asarray(orig_content, np.float32), color_mode)
  return Result(image, history, initial, final, timed_steps / timed_s if timed_s else float("nan"))


class Compiled(NamedTuple):
  tx: optax.GradientTransformation
  targets: Callable  # (params, content, style) -> {'content': a_C, 'grams': {layer: G_S}}
  evaluate: Callable  # (params, z, targets) -> {'total', 'content', 'style', 'tv'}
  step: Callable  # (params, z, opt_state, targets) -> (z, opt_state, total before the step)
  to_image: Callable
  from_image: Callable


@functools.lru_cache(maxsize=8)
def compiled_functions(extract: Extractor, content_layer: str, style_layers: tuple[tuple[str, float], ...],
                       alpha: float, beta: float, tv_weight: float, optimizer: str, learning_rate: float,
                       parameterization: str) -> Compiled:
  """The jitted target, cost and step functions of one objective.

  Cached, so runs with the same settings (a resumed run, a sweep over images)
  reuse the compiled programs; each jitted function compiles once per image size.
  """
  style_weights = dict(style_layers)
  tx = optimizer_for(optimizer, learning_rate)
  to_image, from_image = _parameterization(parameterization)
  layers = list(dict.fromkeys([content_layer, *style_weights]))

  def loss_fn(z, params, targets):
    img = to_image(z)
    acts = {k: v[0] for k, v in extract(params, img[None], layers).items()}
    j_content = content_cost(targets["content"], acts[content_layer])
    j_style = style_cost_from_grams(targets["grams"], acts, style_weights)
    tv = total_variation(img)
    return total_cost(j_content, j_style, alpha, beta) + tv_weight * tv, {
        "content": j_content, "style": j_style, "tv": tv}

  def targets(params, c, s):
    acts_c, acts_s = extract(params, c[None], [content_layer]), extract(params, s[None], list(style_weights))
    return {"content": acts_c[content_layer][0], "grams": {k: gram_matrix(acts_s[k][0]) for k in style_weights}}

  def evaluate(params, z, targets):
    total, aux = loss_fn(z, params, targets)
    return {"total": total, **aux}

  def step(params, z, opt_state, targets):
    if optimizer == "lbfgs":
      value_fn = lambda p: loss_fn(p, params, targets)[0]
      value, grad = optax.value_and_grad_from_state(value_fn)(z, state=opt_state)
      updates, opt_state = tx.update(grad, opt_state, z, value=value, grad=grad, value_fn=value_fn)
    else:
      (value, _), grad = jax.value_and_grad(loss_fn, has_aux=True)(z, params, targets)
      updates, opt_state = tx.update(grad, opt_state, z)
    z = optax.apply_updates(z, updates)
    if parameterization == "clip":
      z = jnp.clip(z, 0.0, 1.0)
    return z, opt_state, value

  step = parallel.jit(step)
  return Compiled(tx, jax.jit(targets), jax.jit(evaluate), step, to_image, from_image)


def optimizer_for(name: str, learning_rate: float) -> optax.GradientTransformation:
  """The pixel optimizer by name: 'adam', or 'lbfgs' (which ignores the learning rate)."""
  if name == "adam":
    return optax.adam(learning_rate)
  return optax.lbfgs()  # its zoom line search picks the step length; learning_rate is Adam's


def _parameterization(name: str):
  if name == "clip":
    return (lambda z: z), (lambda x: x)
  eps = 1e-3
  return jax.nn.sigmoid, (lambda x: jax.scipy.special.logit(jnp.clip(x, eps, 1 - eps)))


def _check_args(content, style, optimizer, parameterization, scales, num_steps, style_layers, content_layer):
  for name, img in (("content", content), ("style", style)):
    if np.ndim(img) != 3 or np.shape(img)[-1] != 3:
      raise ValueError(f"{name}.shape={np.shape(img)}: expected [H, W, 3] RGB in [0, 1]")
  if optimizer not in ("adam", "lbfgs"):
    raise ValueError(f"optimizer={optimizer!r}: expected 'adam' or 'lbfgs'")
  if parameterization not in ("clip", "sigmoid"):
    raise ValueError(f"parameterization={parameterization!r}: expected 'clip' or 'sigmoid'")
  if not scales or list(scales) != sorted(scales) or scales[-1] != 1.0 or scales[0] <= 0:
    raise ValueError(f"scales={tuple(scales)}: expected increasing fractions in (0, 1] ending at 1.0")
  if num_steps < 1:
    raise ValueError(f"num_steps={num_steps}: expected >= 1")
  if not style_layers or not content_layer:
    raise ValueError(f"style_layers={dict(style_layers)}, content_layer={content_layer!r}: expected both set")
