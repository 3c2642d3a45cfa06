"""GoogLeNet / Inception v1 (Szegedy et al. 2014) with BatchNorm and optional auxiliary heads."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnjax.models.layers import (ConvBlock, adaptive_avg_pool, check_input, expected_channels,
                                  global_avg_pool, max_pool, scaled)
from cnnjax.models.registry import register


class InceptionModule(nn.Module):
  """Four parallel branches concatenated on channels.

  1x1 | 1x1 reduce -> 3x3 | 1x1 reduce -> 5x5 | 3x3/1 max pool -> 1x1 projection.
  The 1x1 reductions are the bottlenecks that keep the 3x3 and 5x5 convs cheap;
  `bottleneck=False` drops them (the 3x3 and 5x5 convs read the input directly;
  `c3_reduce` and `c5_reduce` are then unused), the ablation of that claim.
  """
  c1: int
  c3_reduce: int
  c3: int
  c5_reduce: int
  c5: int
  pool_proj: int
  bottleneck: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    conv = lambda f, k, name: ConvBlock(f, (k, k), dtype=self.dtype, name=name)
    reduce = lambda f, name: conv(f, 1, name)(x, train) if self.bottleneck else x
    b1 = conv(self.c1, 1, "branch1")(x, train)
    b3 = conv(self.c3, 3, "branch3")(reduce(self.c3_reduce, "branch3_reduce"), train)
    b5 = conv(self.c5, 5, "branch5")(reduce(self.c5_reduce, "branch5_reduce"), train)
    bp = conv(self.pool_proj, 1, "branch_pool")(max_pool(x, (3, 3), (1, 1), "SAME"), train)
    return jnp.concatenate([b1, b3, b5, bp], axis=-1)


class AuxHead(nn.Module):
  """Auxiliary classifier: pool to 4x4, 1x1 conv 128, fc 1024, dropout 0.7, fc (widths times `width`)."""
  num_classes: int
  width: float = 1.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    # Adaptive pooling (as torchvision) gives the paper's 4x4 at 224x224 and works on small inputs.
    x = adaptive_avg_pool(x, (4, 4))
    x = ConvBlock(scaled(128, self.width), (1, 1), dtype=self.dtype, name="conv")(x, train)
    x = nn.relu(nn.Dense(scaled(1024, self.width), dtype=self.dtype, name="fc1")(x.reshape(x.shape[0], -1)))
    x = nn.Dropout(0.7, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="fc2")(x)


# The paper's table 1: (c1, c3_reduce, c3, c5_reduce, c5, pool_proj); 'M' is a 3x3/2 max pool.
_LAYOUT = (("3a", (64, 96, 128, 16, 32, 32)), ("3b", (128, 128, 192, 32, 96, 64)), "M",
           ("4a", (192, 96, 208, 16, 48, 64)), ("4b", (160, 112, 224, 24, 64, 64)),
           ("4c", (128, 128, 256, 24, 64, 64)), ("4d", (112, 144, 288, 32, 64, 64)),
           ("4e", (256, 160, 320, 32, 128, 128)), "M",
           ("5a", (256, 160, 320, 32, 128, 128)), ("5b", (384, 192, 384, 48, 128, 128)))
_AUX_AFTER = {"4a": "aux1", "4d": "aux2"}


class GoogLeNet(nn.Module):
  """GoogLeNet: stem, nine Inception modules, global average pooling, dropout 0.4, `fc`.

  Returns logits, or `(logits, aux1, aux2)` when `aux_logits` and `train`.
  Pools use 'SAME' padding (ceil(n/2) outputs), which matches the paper's
  sizes at 224x224 and keeps every size >= 1 on small inputs. `width`
  multiplies every conv's channels (aux heads included); `bottleneck=False`
  removes the modules' 1x1 reductions before their 3x3 and 5x5 convs.
  """
  num_classes: int = 1000
  aux_logits: bool = False
  dropout_rate: float = 0.4
  width: float = 1.0
  bottleneck: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray | tuple[jnp.ndarray, ...]:
    check_input(x, rank=4, channels=expected_channels(self, "conv1/conv"))
    conv = lambda f, k, s, name: ConvBlock(scaled(f, self.width), (k, k), strides=s, dtype=self.dtype, name=name)
    pool = lambda y: max_pool(y, (3, 3), (2, 2), "SAME")
    x = pool(conv(64, 7, 2, "conv1")(x, train))
    x = pool(conv(192, 3, 1, "conv3")(conv(64, 1, 1, "conv2")(x, train), train))
    # Aux heads are built at init whatever `train` is, so their parameters always exist.
    with_aux = self.aux_logits and (train or self.is_initializing())
    aux = []
    for item in _LAYOUT:
      if item == "M":
        x = pool(x)
        continue
      name, widths = item
      x = InceptionModule(*(scaled(w, self.width) for w in widths), bottleneck=self.bottleneck, dtype=self.dtype,
                          name=f"inception{name}")(x, train)
      if with_aux and name in _AUX_AFTER:
        aux.append(AuxHead(self.num_classes, self.width, dtype=self.dtype, name=_AUX_AFTER[name])(x, train))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(global_avg_pool(x))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(x)
    return (logits, *aux) if self.aux_logits and train else logits


register("googlenet")(GoogLeNet)
