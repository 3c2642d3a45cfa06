"""Style-transfer step speed: cnnjax (JAX) against the same algorithm written in PyTorch, same CPU.

  python -m experiments.style_benchmark --size=256 --steps=10

Both run one Adam step (lr 0.01, pixels clipped to [0, 1]) of the Gatys et al.
objective on the same random VGG-19 trunk (average pooling, up to relu5_1),
style layers relu1_1..relu5_1 at 0.2, content layer relu4_2, alpha 1, beta 1e3,
the DESIGN.md cost normalisations. Timings exclude compilation / the first step.
torch is imported only inside `torch_steps_per_s` (it is a test/benchmark oracle).
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from cnnjax.style.features import init_vgg_params, vgg_features
from cnnjax.style.images import load_image
from cnnjax.style.transfer import compiled_functions

STYLE = {f"relu{b}_1": 0.2 for b in range(1, 6)}
CONTENT = "relu4_2"
_SIZE = flags.DEFINE_integer("size", 256, "Image side.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (after one warm-up step).")


def _inputs(size: int, seed: int = 0):
  params = init_vgg_params(jax.random.key(seed), "vgg19", taps=list(STYLE))
  return params, load_image("astronaut", size), load_image("immunohistochemistry", size)


def jax_steps_per_s(size: int = 256, steps: int = 10, seed: int = 0) -> tuple[float, float]:
  """(Adam steps per second, first loss) of `cnnjax.style.transfer` (one compiled step)."""
  params, content, style = _inputs(size, seed)
  fns = compiled_functions(functools.partial(vgg_features, pool="avg"), CONTENT, tuple(STYLE.items()),
                           1.0, 1e3, 0.0, "adam", 0.01, "clip")
  targets = fns.targets(params, jnp.asarray(content), jnp.asarray(style))
  z = jnp.asarray(content)
  opt = fns.tx.init(z)
  z, opt, first = fns.step(params, z, opt, targets)  # compile
  jax.block_until_ready(z)
  t0 = time.perf_counter()
  for _ in range(steps):
    z, opt, loss = fns.step(params, z, opt, targets)
  jax.block_until_ready(z)
  return steps / (time.perf_counter() - t0), float(first)


def torch_steps_per_s(size: int = 256, steps: int = 10, seed: int = 0) -> tuple[float, float]:
  """(steps per second, first loss) of the same objective, weights and optimizer in eager PyTorch."""
  import torch
  params, content, style = _inputs(size, seed)
  mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
  std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
  convs = {k: (torch.from_numpy(np.asarray(v["kernel"]).transpose(3, 2, 0, 1).copy()),
               torch.from_numpy(np.array(v["bias"]))) for k, v in params.items()}
  order = list(convs)

  def features(img):  # img [1, 3, H, W] in [0, 1]
    x, out = (img - mean) / std, {}
    for j, name in enumerate(order):
      x = torch.relu(torch.nn.functional.conv2d(x, *convs[name], padding=1))
      out["relu" + name[4:]] = x
      if j + 1 < len(order) and order[j + 1][4] != name[4]:
        x = torch.nn.functional.avg_pool2d(x, 2)
    return out

  def gram(a):
    f = a[0].reshape(a.shape[1], -1)
    return f @ f.T

  to_t = lambda im: torch.from_numpy(im).permute(2, 0, 1)[None].contiguous()
  with torch.no_grad():
    a_c = features(to_t(content))[CONTENT]
    g_s = {k: gram(v) for k, v in features(to_t(style)).items() if k in STYLE}
  z = to_t(content).clone().requires_grad_(True)
  opt = torch.optim.Adam([z], lr=0.01)

  def step():
    opt.zero_grad()
    acts = features(z)
    _, c, h, w = a_c.shape
    j_content = ((a_c - acts[CONTENT]) ** 2).sum() / (4 * h * w * c)
    j_style = 0.0
    for k, wgt in STYLE.items():
      _, c, h, w = acts[k].shape
      j_style = j_style + wgt * ((g_s[k] - gram(acts[k])) ** 2).sum() / (4 * c**2 * (h * w) ** 2)
    loss = 1.0 * j_content + 1e3 * j_style
    loss.backward()
    opt.step()
    with torch.no_grad():
      z.clamp_(0, 1)
    return loss.detach()

  first = step().item()  # warm-up
  t0 = time.perf_counter()
  for _ in range(steps):
    step()
  return steps / (time.perf_counter() - t0), first


def main(argv):
  del argv
  import torch
  j, j_loss = jax_steps_per_s(_SIZE.value, _STEPS.value)
  t, t_loss = torch_steps_per_s(_SIZE.value, _STEPS.value)
  print(f"size {_SIZE.value}: jax {j:.3f} steps/s, torch {t:.3f} steps/s (threads {torch.get_num_threads()}), "
        f"jax/torch = {j / t:.2f}; first loss jax {j_loss:.6g}, torch {t_loss:.6g}")


if __name__ == "__main__":
  app.run(main)
