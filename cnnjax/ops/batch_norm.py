"""BatchNorm's training-mode normalisation as one op, with its gradient written out.

`batch_norm(x, scale, bias, epsilon)` gives what flax's `nn.BatchNorm` computes
in training: the batch mean and (biased) variance of every channel, by flax's
fast formula `E[x^2] - E[x]^2`, and `(x - mean) * scale / sqrt(var + epsilon) + bias`.
Its statistics are two sums over the batch, and its gradient two more (of the
output gradient and of its product with `x`). On the CPU each pair is one pass
of `cnnjax.ops.kernels.channel_sums`, where XLA:CPU would read the array once
per sum (ResNet-20 has 19 BatchNorms); for channel counts or dtypes the kernel
does not take, they are `jnp.sum`s. Elsewhere (GPU, TPU) it is flax's own
formula, differentiated by autodiff: the program stock Flax gives.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from cnnjax.ops import kernels


def batch_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(y, mean, var) of float32 `x` [..., C] normalised over all axes but the last; `scale`, `bias` [C]."""
  return lax.platform_dependent(x, scale, bias, cpu=functools.partial(_one_pass, epsilon=epsilon),
                                default=functools.partial(_flax_formula, epsilon=epsilon))


def _flax_formula(x, scale, bias, epsilon):
  """flax's `nn.BatchNorm` as it stands (its gradient by autodiff): the program stock Flax gives off the CPU."""
  axes, by_channel = tuple(range(x.ndim - 1)), (1,) * (x.ndim - 1) + (x.shape[-1],)
  mean, mean_square = jnp.mean(x, axes), jnp.mean(jnp.square(x), axes)
  var = jnp.maximum(0.0, mean_square - jnp.square(mean))
  # flax's steps and shapes, so that autodiff gives flax's gradient program op for op.
  y = x - jnp.expand_dims(mean, axes)
  multiplier = lax.rsqrt(jnp.expand_dims(var, axes) + epsilon) * scale.reshape(by_channel)
  return y * multiplier + bias.reshape(by_channel), mean, var


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _one_pass(x, scale, bias, epsilon):
  return _forward(x, scale, bias, epsilon)[0]


def _forward(x, scale, bias, epsilon):
  count = x.size // x.shape[-1]
  sum_x, sum_xx = _sums(x, x)
  mean = sum_x / count
  raw_var = sum_xx / count - jnp.square(mean)
  var = jnp.maximum(raw_var, 0.0)
  inv = lax.rsqrt(var + epsilon)
  return (_normalize(x, mean, inv, scale, bias), mean, var), (x, scale, mean, raw_var, inv)


def _backward(epsilon, residuals, cotangents):
  """y = (x - mean) k + bias with k = scale * inv: dx = k dy + 2 d_var x / n + d_mean / n, by channel."""
  del epsilon
  x, scale, mean, raw_var, inv = residuals
  dy, d_mean, d_var = cotangents
  count = x.size // x.shape[-1]
  sum_dy, sum_dy_x = _sums(dy, x)
  d_k = sum_dy_x - mean * sum_dy  # sum of dy * (x - mean)
  d_var = jax.vjp(lambda v: jnp.maximum(v, 0.0), raw_var)[1](d_k * scale * -0.5 * inv**3 + d_var)[0]
  d_mean = d_mean - scale * inv * sum_dy - 2 * mean * d_var
  dx = dy * (scale * inv) + x * (2 * d_var / count) + d_mean / count
  return dx, d_k * inv, sum_dy


_one_pass.defvjp(_forward, _backward)


def _normalize(x: jax.Array, mean: jax.Array, inv_std: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
  """(x - mean) * scale / std + bias, by channel, in flax's order of operations."""
  return (x - mean) * (scale * inv_std) + bias


def _sums(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(sum a, sum a * b) over all axes but the last."""
  if kernels.supports_channel_sums(a):
    return tuple(kernels.channel_sums(a, b))
  axes = tuple(range(a.ndim - 1))
  return jnp.sum(a, axes), jnp.sum(a * b, axes)
