"""1:K recognition against a growing gallery (issue 21, faces): the default embedding run on `synthetic_faces`.

  python -m experiments.claims.gallery --workdir=/tmp/gallery

One semi-hard triplet training of 2,000 steps (the embedding experiment's default), then galleries of K of the
100 test identities (BUILD.md gives the measured time); scale with `claim.repeats`, `num_steps`.
"""

import ml_collections

from experiments.configs import embedding_default


def get_config() -> ml_collections.ConfigDict:
  config = embedding_default.get_config()
  config.claim = ml_collections.ConfigDict(dict(
      gallery_sizes=(1, 2, 5, 10, 20, 50, 100),  # enrolled test identities, one image each
      repeats=50,  # random galleries (identities and their enrolled image) per K
  ))
  return config
