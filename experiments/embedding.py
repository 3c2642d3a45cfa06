"""Face verification and one-shot recognition with an embedding network trained by triplet loss.

  python -m experiments.embedding --workdir=/tmp/faces                       # semi-hard, synthetic_faces
  python -m experiments.embedding --config=experiments/configs/embedding_random.py --workdir=/tmp/random

Trains on P identities x K images per batch (`cnnjax.embedding.PKSampler`)
through `cnnjax.train.fit`, chooses the distance threshold on the validation
identities, then reports verification (10-fold accuracy, AUC, VAL at FAR 1e-3)
and one-shot recognition on test identities never seen in training.
"""

import dataclasses
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnjax import embedding, models, train
from cnnjax.data import pipeline, prepare, sources, views
from cnnjax.embedding.losses import LOSSES, PAIR_FORMS
from cnnjax.models.embedding import PairHead
from cnnjax.train import parallel
from cnnjax.train.config import check_int, check_number, fail
from cnnjax.train.step import make_eval_step
from cnnjax.viz import embeddings as viz
from experiments import cli

SPLITS = ("train", "val", "test")
PROJECTIONS = ("pca", "tsne")


def check_config(config: ml_collections.ConfigDict) -> train.TrainConfig:
  """Checks every field of an embedding config before any data is read; returns its training config.

  Every loss needs P >= 2 identities and K >= 2 images of each in a batch: with
  K = 1 no anchor has a positive (every triplet loss is exactly 0 for the whole
  run), with P = 1 none has a negative.
  """
  train_config = train.TrainConfig.from_config(config)
  if config.model not in models.list_models():
    fail("model", config.model, f"one of {models.list_models()}")
  loss = config.loss
  if loss.name not in LOSSES:
    fail("loss.name", loss.name, f"one of {LOSSES}")
  check_number("loss.margin", loss.margin, 0.0, float("inf"))
  if loss.margin == 0 and loss.name != "binary":
    fail("loss.margin", loss.margin, "a margin > 0 (with 0 a triplet loss is satisfied by collapsing every embedding)")
  pair_head = config.model_kwargs.get("pair_head")
  if loss.name == "binary" and pair_head not in PAIR_FORMS:
    fail("model_kwargs.pair_head", pair_head, f"one of {PAIR_FORMS} with loss.name='binary'")
  if loss.name != "binary" and pair_head is not None:
    fail("model_kwargs.pair_head", pair_head, f"None with loss.name={loss.name!r} (the pair head is for 'binary')")
  for field, role in (("p", "identities per batch: with 1 no anchor has a negative"),
                      ("k", "images per identity: with 1 no anchor has a positive")):
    if isinstance(config[field], bool) or not isinstance(config[field], int) or config[field] < 2:
      fail(field, config[field], f"an integer >= 2 ({role})")
  if config.batch_size != config.p * config.k:
    fail("batch_size", config.batch_size, f"p * k = {config.p} * {config.k} = {config.p * config.k}")
  for field, minimum in (("embedding_dim", 1), ("image_size", 0), ("eval_batch_size", 1), ("n_folds", 2),
                         ("val_pairs", 2), ("test_pairs", 2)):
    check_int(field, config[field], minimum)
  for field in ("val_pairs", "test_pairs"):
    if not config.pairs_file and config[field] < config.n_folds:
      fail(field, config[field], f"at least n_folds={config.n_folds} pairs (one per fold)")
  check_number("enrolled_fraction", config.enrolled_fraction, 0.0, 1.0)
  if config.enrolled_fraction == 0:
    fail("enrolled_fraction", config.enrolled_fraction, "a fraction in (0, 1) of the test people to enroll")
  check_number("recognition_far", config.recognition_far, 0.0, 1.0)
  if config.projection not in PROJECTIONS:
    fail("projection", config.projection, f"one of {PROJECTIONS}")
  if config.pairs_file and not os.path.isfile(config.pairs_file):
    fail("pairs_file", config.pairs_file, "'' or the path of an existing LFW-style pairs file")
  if config.image_size:  # else the dataset's own size, known only once it is read
    model = models.create(config.model, num_classes=config.embedding_dim, **config.model_kwargs)
    x = jax.ShapeDtypeStruct((2, config.image_size, config.image_size, 3), jnp.float32)
    try:
      jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)  # traced, not compiled
    except ValueError as e:
      fail("image_size", config.image_size, f"a size model={config.model!r} takes ({e})")
  return train_config


def load_identities(config: ml_collections.ConfigDict, part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Images (uint8 NHWC), integer identities and identity names of one part ('train' | 'val' | 'test').

  `config.<part>_split` names the dataset split, `config.<part>_labels` keeps only
  those identities (empty: all). Text labels (LFW's names) become integers by
  sorted name. With `config.pairs_file`, 'train' keeps the people the file never
  names and 'val' / 'test' the people it names.
  """
  source = sources.load(config.dataset, config[f"{part}_split"], data_dir=config.data_dir or None)
  resize = views.resize_images(config.image_size) if config.image_size else (lambda r: r)
  records = [resize(source[i]) for i in range(len(source))]
  images = np.stack([r["image"] for r in records])
  raw = np.array([r["label"] for r in records])
  if np.issubdtype(raw.dtype, np.integer):
    labels, names = raw, raw.astype(str)
  else:
    names = np.array([n.decode() if isinstance(n, bytes) else str(n) for n in raw])
    labels = np.unique(names, return_inverse=True)[1]
  keep = np.ones(len(labels), bool)
  if tuple(config[f"{part}_labels"]):
    keep = np.isin(labels, tuple(config[f"{part}_labels"]))
  if config.pairs_file:
    named = {name for a, _, b, _ in embedding.read_pairs_file(config.pairs_file)[0] for name in (a, b)}
    keep &= np.isin(names, list(named)) != (part == "train")
  if not keep.any():
    raise ValueError(f"nothing left of split {config[f'{part}_split']!r} for part {part!r} "
                     f"({part}_labels={tuple(config[f'{part}_labels'])}, pairs_file={config.pairs_file!r})")
  return images[keep], labels[keep].astype(np.int32), names[keep]


def evaluation_pairs(config: ml_collections.ConfigDict, part: str, labels: np.ndarray, names: np.ndarray):
  """(i, j, same) of the pairs to verify: from `config.pairs_file` (its folds in order) or drawn at random."""
  if config.pairs_file:
    pairs, folds = embedding.read_pairs_file(config.pairs_file)
    if folds != config.n_folds and folds > 1:
      raise ValueError(f"n_folds={config.n_folds} but {config.pairs_file} holds {folds} folds")
    return embedding.pairs_from_names(pairs, names)
  return embedding.make_pairs(labels, config[f"{part}_pairs"], seed=config.seed)


def make_embedder(model, preprocess, mesh, batch_size: int):
  """`(state, images) -> (n, d)` embeddings in fixed-size (padded) batches over the mesh."""
  step = parallel.compile_eval_step(
      make_eval_step(lambda out, batch: out["embedding"] if isinstance(out, dict) else out,
                     preprocess_fn=preprocess), mesh)

  def embed(state, images: np.ndarray) -> np.ndarray:
    n = len(images)
    padded = np.concatenate([images, np.repeat(images[:1], -n % batch_size, axis=0)])
    chunks = ({"image": pipeline.process_share(padded[s:s + batch_size])} for s in range(0, len(padded), batch_size))
    out = [np.asarray(jax.device_get(step(state, b))) for b in pipeline.prefetch_to_mesh(chunks, mesh)]
    return np.concatenate(out)[:n]

  return embed


@dataclasses.dataclass
class Setup:
  """What training and evaluating an embedding share: the three identity-disjoint parts, model and embedder."""
  data: dict  # part ('train' | 'val' | 'test') -> (images, identities, identity names)
  model: Any
  mean: np.ndarray  # channel statistics of all training images, in [0, 1] units
  std: np.ndarray
  embed: Callable  # (state, uint8 images) -> (n, d) embeddings
  pairs: dict  # 'val' | 'test' -> (i, j, same): the pairs verified


def build(config: ml_collections.ConfigDict) -> Setup:
  """Loads the parts, checks they share no identity, and builds the model, normalisation and embedder."""
  data = {part: load_identities(config, part) for part in SPLITS}
  shared = set(data["train"][2]) & (set(data["val"][2]) | set(data["test"][2]))
  if shared:
    raise ValueError(f"{len(shared)} identities (e.g. {sorted(shared)[:3]}) are in training and in "
                     "validation or test; choose disjoint *_split / *_labels, or set pairs_file (LFW)")
  dtype = jnp.dtype(config.dtype)
  model = models.create(config.model, num_classes=config.embedding_dim, dtype=dtype, **config.model_kwargs)
  mean, std = prepare.image_channel_stats(data["train"][0])
  embed = make_embedder(model, prepare.make_preprocess(mean, std, dtype), parallel.data_mesh(),
                        config.eval_batch_size)
  pairs = {part: evaluation_pairs(config, part, data[part][1], data[part][2]) for part in ("val", "test")}
  return Setup(data, model, mean, std, embed, pairs)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains as configured, evaluates on unseen identities; returns (and writes) the results."""
  start_time = time.perf_counter()
  train_config = check_config(config)  # before any data is read
  setup = build(config)
  data, pairs, embed, mean, std = setup.data, setup.pairs, setup.embed, setup.mean, setup.std
  train_images, train_labels, _ = data["train"]
  sampler = embedding.PKSampler(train_labels, config.p, config.k, seed=config.seed)
  dtype = jnp.dtype(config.dtype)

  def evaluate(state) -> dict[str, float]:
    i, j, same = pairs["val"]
    d = embedding.pair_distances(embed(state, data["val"][0]), i, j)
    acc, _, _ = embedding.kfold_accuracy(d, same, config.n_folds)
    return {"val_verification_accuracy": acc, "val_auc": embedding.roc(d, same)[2]}

  def batches(start_step: int):
    for batch in sampler.batches({"image": train_images, "label": train_labels}, start_step,
                                 with_triplets=config.loss.name == "random"):
      # Triplet indices stay global: the mesh reassembles the global batch they point into.
      yield pipeline.process_share(batch)

  result = train.fit(
      train_config, workdir, model=setup.model, experiment_config=config,
      loss_fn=embedding.make_loss_fn(config.loss.name, margin=config.loss.margin, squared=config.loss.squared,
                                     balanced=config.loss.balanced),
      batches=batches, eval_fn=evaluate, augment_fn=prepare.make_augment_fn(mean, std, config.augment, dtype))
  state = result.state
  results = {"dataset": config.dataset, "loss": config.loss.name, "num_steps": config.num_steps,
             **report(config, workdir, state, {p: (embed(state, data[p][0]), data[p][1]) for p in ("val", "test")},
                      pairs)}
  results.update(train_time_s=result.train_time_s, train_images_per_s=result.train_images_per_s)
  results["wall_time_s"] = time.perf_counter() - start_time
  if jax.process_index() == 0:
    train.write_results(workdir, results)
  return results


def thresholds(config: ml_collections.ConfigDict, val_embeddings: np.ndarray, val_pairs) -> tuple[float, float]:
  """(verification threshold, strict recognition threshold) on the distances of the validation pairs."""
  vi, vj, v_same = val_pairs
  val_d = embedding.pair_distances(val_embeddings, vi, vj)
  threshold, _ = embedding.best_threshold(val_d, v_same)
  # Open-set recognition compares a probe with every enrolled person, so a pair-accuracy threshold
  # lets strangers in; the strict one keeps the validation pair FAR at config.recognition_far.
  strict = embedding.val_at_far(val_d, v_same, config.recognition_far)[2]
  return threshold, strict


def report(config, workdir: str | None, state, emb: dict, pairs: dict) -> dict:
  """Verification and recognition figures on the test identities (threshold from validation), and plots.

  `emb` and `pairs` may hold another part under 'test' (`experiments.evaluate` does so); no plots
  are drawn when `workdir` is None.
  """
  (val_e, _), (test_e, test_y) = emb["val"], emb["test"]
  threshold, strict = thresholds(config, val_e, pairs["val"])
  i, j, same = pairs["test"]
  d = embedding.pair_distances(test_e, i, j)
  results = embedding.verification_report(d, same, config.n_folds)
  for prefix, t in (("", threshold), ("strict_", strict)):
    results[f"{prefix}val_threshold"] = t
    recognition = embedding.one_shot_recognition(test_e, test_y, threshold=t, seed=config.seed,
                                                 enrolled_fraction=config.enrolled_fraction)
    results.update({k.replace("recognition_", f"recognition_{prefix}"): v for k, v in recognition.items()
                    if not prefix or k in ("recognition_top1", "recognition_false_accept_rate")})
  if config.model_kwargs.get("pair_head"):
    # The learned verifier: a higher logit means 'same', so its negation ranks like a distance.
    head = PairHead(config.model_kwargs.pair_head)
    logits = head.apply({"params": jax.device_get(state.params["pair_head"])}, test_e[i], test_e[j])
    scored = embedding.verification_report(-np.asarray(logits), same, config.n_folds)
    results.update({f"classifier_{k}": v for k, v in scored.items()})
  if workdir is not None and jax.process_index() == 0:
    far, tar, auc = embedding.roc(d, same)
    figures = {
        "embeddings_2d": viz.plot_projection(test_e, test_y, method=config.projection, seed=config.seed),
        "roc": viz.plot_roc(far, tar, auc),
        "distances": viz.plot_distance_histograms(d, same, threshold),
    }
    os.makedirs(os.path.join(workdir, "plots"), exist_ok=True)
    for name, fig in figures.items():
      fig.savefig(os.path.join(workdir, "plots", f"{name}.png"), dpi=100)
  return results


if __name__ == "__main__":
  cli.launch(run, config="embedding_default.py", workdir="workdirs/embedding")
