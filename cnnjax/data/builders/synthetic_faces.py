"""The `synthetic_faces` dataset: procedurally drawn faces, identity in the traits, nuisances per image.

Each identity is a vector of traits (face shape, skin, hair tone and shape, ears,
eye spacing, size and colour, brows, nose, mouth, beard, moustache, glasses);
each image of it varies the nuisances (position, scale, rotation, lighting,
colour cast, expression, gaze, noise, background, partial occlusion). Drawing is
vectorised NumPy over soft-edged shapes in a face frame that a per-image
similarity transform maps to pixels. Splits are identity-disjoint.
"""

import numpy as np
import tensorflow_datasets as tfds

IMAGE_SIZE = 48
NUM_IDENTITIES = 600
IMAGES_PER_IDENTITY = 12
SPLIT_IDENTITIES = {"train": (0, 400), "validation": (400, 500), "test": (500, 600)}
SEED = 0
_CHUNK = 512

_SKIN = np.array([[0.98, 0.85, 0.74], [0.87, 0.68, 0.53], [0.66, 0.46, 0.32], [0.40, 0.26, 0.17]])
_HAIR = np.array([[0.08, 0.06, 0.05], [0.35, 0.22, 0.12], [0.85, 0.72, 0.42], [0.62, 0.25, 0.10],
                  [0.70, 0.70, 0.70]])
_IRIS = np.array([[0.25, 0.45, 0.80], [0.35, 0.20, 0.08], [0.30, 0.55, 0.30], [0.15, 0.12, 0.10]])

# (name, low, high): uniform ranges of the identity traits, in face-frame units (face half-height ~1).
_TRAIT_RANGES = (
    ("face_w", 0.62, 0.86), ("face_h", 0.86, 1.05), ("jaw_p", 1.6, 2.9), ("skin_t", 0.0, 1.0),
    ("skin_hue", -0.06, 0.06), ("hair_t", 0.0, 1.0), ("hair_w", 1.02, 1.28), ("hair_h", 1.04, 1.3),
    ("hair_len", -0.3, 0.9), ("hairline", -0.78, -0.38), ("part", -0.35, 0.35), ("ear_r", 0.1, 0.2),
    ("ear_v", -0.15, 0.1), ("eye_sep", 0.24, 0.42), ("eye_v", -0.28, -0.05), ("eye_w", 0.09, 0.16),
    ("eye_ratio", 0.45, 0.85), ("iris_t", 0.0, 1.0), ("brow_gap", 0.09, 0.2), ("brow_t", 0.02, 0.055),
    ("brow_w", 0.1, 0.2), ("brow_tilt", -0.35, 0.35), ("nose_v", 0.05, 0.28), ("nose_w", 0.05, 0.12),
    ("nose_l", 0.08, 0.2), ("mouth_v", 0.42, 0.64), ("mouth_w", 0.14, 0.32), ("mouth_t", 0.02, 0.055),
    ("lip_t", 0.0, 1.0), ("beard", 0.0, 1.0), ("beard_v", 0.25, 0.6), ("moustache", 0.0, 1.0),
    ("glasses", 0.0, 1.0), ("glasses_t", 0.0, 1.0),
)


def identity_traits(num_identities: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
  """Draws the traits of `num_identities` people; colours are RGB arrays of shape (n, 3)."""
  t = {name: rng.uniform(lo, hi, num_identities) for name, lo, hi in _TRAIT_RANGES}
  t["skin"] = _palette(_SKIN, t["skin_t"]) * (1 + t["skin_hue"][:, None] * np.array([1.0, 0.0, -1.0]))
  t["hair"] = _palette(_HAIR, t["hair_t"])
  t["iris"] = _palette(_IRIS, t["iris_t"])
  t["lip"] = t["skin"] * np.array([0.85, 0.55, 0.55]) * (0.7 + 0.3 * t["lip_t"][:, None])
  t["glasses_rgb"] = _palette(np.array([[0.05, 0.05, 0.05], [0.55, 0.35, 0.1], [0.7, 0.7, 0.75]]),
                              t["glasses_t"])
  # Binary traits for a share of the people only.
  t["beard"] = t["beard"] < 0.2
  t["moustache"] = t["moustache"] < 0.2
  t["glasses"] = t["glasses"] < 0.2
  return t


def image_nuisances(num_images: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
  """Draws the per-image nuisances: pose, lighting, expression, noise, background, occlusion."""
  u = lambda lo, hi, *shape: rng.uniform(lo, hi, (num_images, *shape))
  occluded = rng.uniform(size=num_images) < 0.3
  return {
      "shift": u(-0.08, 0.08, 2), "scale": u(0.52, 0.62), "angle": np.deg2rad(u(-12, 12)),
      "gain": u(0.7, 1.2), "grad": u(-0.35, 0.35, 2), "cast": u(0.93, 1.07, 3),
      "smile": u(-0.04, 0.09), "open": u(0.55, 1.1), "raise": u(0.0, 0.05), "gaze": u(-0.3, 0.3, 2),
      "noise": u(0.0, 0.05), "background": u(0.1, 0.9, 3),
      "occ_center": u(-0.7, 0.7, 2), "occ_size": u(0.15, 0.35, 2) * occluded[:, None],
      "occ_rgb": u(0.0, 1.0, 3),
  }


def render(traits: dict[str, np.ndarray], nuis: dict[str, np.ndarray], size: int,
           rng: np.random.Generator) -> np.ndarray:
  """Draws one image per row of `traits` / `nuis` (same length) as uint8 (n, size, size, 3)."""
  col = lambda a: a[:, None, None]  # per-image scalar -> broadcast over pixels
  rgb = lambda a: a[:, None, None, :]
  n = len(nuis["scale"])
  g = (np.arange(size) + 0.5) / size * 2 - 1
  y, x = np.meshgrid(g, g, indexing="ij")
  x, y = x[None], y[None]
  # Image coordinates -> face frame: undo shift, rotation and scale.
  x, y = x.astype(np.float32), y.astype(np.float32)
  dx, dy = x - col(nuis["shift"][:, 0]), y - col(nuis["shift"][:, 1])
  cos, sin = col(np.cos(nuis["angle"])), col(np.sin(nuis["angle"]))
  s = col(nuis["scale"])
  fu, fv = (cos * dx + sin * dy) / s, (-sin * dx + cos * dy) / s
  edge = s * size / 2  # pixels per face-frame unit: soft edges one pixel wide

  def ellipse(cu, cv, ru, rv, p=None):
    du, dv = (fu - cu) / ru, (fv - cv) / rv
    if p is None:  # the common circle-like case without the slow general power
      r = np.sqrt(du * du + dv * dv)
    else:
      r = (np.abs(du) ** p + np.abs(dv) ** p) ** (1 / p)
    return np.clip(0.5 + (1 - r) * np.minimum(ru, rv) * edge, 0, 1)

  def below(limit, v):  # soft v < limit
    return np.clip(0.5 + (limit - v) * edge, 0, 1)

  img = np.broadcast_to(rgb(nuis["background"]), (n, size, size, 3)).copy()

  def paint(alpha, colour):
    img[...] += alpha[..., None] * (colour - img)  # in place: the images are the biggest arrays here

  t = {k: (col(v) if v.ndim == 1 else rgb(v)) for k, v in traits.items()}
  skin, hair = t["skin"], t["hair"]
  fw, fh = t["face_w"], t["face_h"]
  paint(ellipse(0, -0.1, fw * t["hair_w"], fh * t["hair_h"]) * below(t["hair_len"], fv), hair)
  paint(ellipse(0, 0.95, 0.32 * fw, 0.5), skin * 0.85)  # neck
  for side in (-1, 1):
    paint(ellipse(side * fw, t["ear_v"], t["ear_r"] * 0.7, t["ear_r"]), skin * 0.92)
  face = ellipse(0, 0, fw, fh, t["jaw_p"])
  paint(face, skin)
  paint(face * below(t["hairline"] + t["part"] * fu, fv), hair)
  paint(face * t["beard"] * (1 - below(t["beard_v"], fv)), hair * 0.9)
  eye_h = t["eye_w"] * t["eye_ratio"] * col(nuis["open"])
  for side in (-1, 1):
    cu, cv = side * t["eye_sep"], t["eye_v"]
    paint(ellipse(cu, cv, t["eye_w"], eye_h), np.float32(0.95))
    iu = cu + col(nuis["gaze"][:, 0]) * t["eye_w"] * 0.4
    iv = cv + col(nuis["gaze"][:, 1]) * eye_h * 0.3
    inside = ellipse(cu, cv, t["eye_w"], eye_h)
    paint(inside * ellipse(iu, iv, t["eye_w"] * 0.5, t["eye_w"] * 0.5), t["iris"])
    paint(inside * ellipse(iu, iv, t["eye_w"] * 0.22, t["eye_w"] * 0.22), np.float32(0))
    bv = cv - eye_h - t["brow_gap"] - col(nuis["raise"]) + side * t["brow_tilt"] * (fu - cu)
    paint(np.clip(0.5 + (t["brow_t"] - np.abs(fv - bv)) * edge, 0, 1)
          * ellipse(cu, cv, t["brow_w"] * 1.2, 1.0), hair * 0.8)
    ring = ellipse(cu, cv, t["eye_w"] * 1.7, t["eye_w"] * 1.5)
    paint(t["glasses"] * ring * (1 - ellipse(cu, cv, t["eye_w"] * 1.45, t["eye_w"] * 1.25)),
          t["glasses_rgb"])
  paint(ellipse(0, t["nose_v"], t["nose_w"], t["nose_l"]), skin * 0.78)
  paint(t["moustache"] * ellipse(0, t["mouth_v"] - 0.09, t["mouth_w"] * 0.9, 0.04), hair * 0.9)
  mouth_centre = t["mouth_v"] - col(nuis["smile"]) + col(nuis["smile"]) * (fu / t["mouth_w"]) ** 2
  band = np.clip(0.5 + (t["mouth_t"] - np.abs(fv - mouth_centre)) * edge, 0, 1)
  paint(band * np.clip(0.5 + (t["mouth_w"] - np.abs(fu)) * edge, 0, 1), t["lip"])
  # Occlusion: an axis-aligned patch in image coordinates.
  oc, osz = nuis["occ_center"], nuis["occ_size"]
  box = ((np.abs(x - col(oc[:, 0])) < col(osz[:, 0])) & (np.abs(y - col(oc[:, 1])) < col(osz[:, 1])))
  paint(box.astype(np.float32), rgb(nuis["occ_rgb"]))
  light = col(nuis["gain"]) * (1 + col(nuis["grad"][:, 0]) * x + col(nuis["grad"][:, 1]) * y)
  img = img * light[..., None] * rgb(nuis["cast"])
  img = img + rng.standard_normal(size=img.shape, dtype=np.float32) * col(nuis["noise"])[..., None]
  return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def make_faces(num_identities: int = NUM_IDENTITIES, images_per_identity: int = IMAGES_PER_IDENTITY,
               size: int = IMAGE_SIZE, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
  """All images (identity-major order) as uint8 (N, size, size, 3) and their identity labels."""
  rng = np.random.default_rng(seed)
  # float32 halves the drawing time; the draws themselves stay float64 so they do not depend on it.
  f32 = lambda d: {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in d.items()}
  traits = f32(identity_traits(num_identities, rng))
  labels = np.repeat(np.arange(num_identities), images_per_identity)
  nuis = f32(image_nuisances(len(labels), rng))
  images = np.empty((len(labels), size, size, 3), np.uint8)
  for start in range(0, len(labels), _CHUNK):
    sl = slice(start, start + _CHUNK)
    images[sl] = render({k: v[labels[sl]] for k, v in traits.items()},
                        {k: v[sl] for k, v in nuis.items()}, size, rng)
  return images, labels


def _palette(colours: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Piecewise-linear interpolation along a list of colours, t in [0, 1]."""
  pos = t * (len(colours) - 1)
  i = np.minimum(pos.astype(int), len(colours) - 2)
  w = (pos - i)[:, None]
  return colours[i] * (1 - w) + colours[i + 1] * w


class SyntheticFaces(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """600 procedurally drawn people x 12 images each, 48x48 RGB, identity-disjoint splits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=("Procedural faces: identity in the traits (face shape, skin, hair, eyes, brows, "
                     "nose, mouth, beard, glasses), nuisances per image (pose, lighting, expression, "
                     "noise, occlusion). Identities 0-399 train, 400-499 validation, 500-599 test."),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=NUM_IDENTITIES),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Generated, nothing to download.
    images, labels = make_faces()
    return {name: self._generate_examples(images, labels, np.flatnonzero((labels >= lo) & (labels < hi)))
            for name, (lo, hi) in SPLIT_IDENTITIES.items()}

  def _generate_examples(self, images, labels, indices):
    for i in indices:
      yield int(i), {"image": images[i], "label": int(labels[i])}


Builder = SyntheticFaces
