"""Plots of face embeddings: a 2-D projection by identity, the ROC curve, same/different distance histograms."""

from matplotlib.figure import Figure
import numpy as np


def project_2d(embeddings: np.ndarray, method: str = "pca", *, seed: int = 0) -> np.ndarray:
  """(n, d) -> (n, 2) with scikit-learn's PCA or t-SNE."""
  embeddings = np.asarray(embeddings)
  if embeddings.ndim != 2 or len(embeddings) < 3:
    raise ValueError(f"embeddings must be (n >= 3, d), got shape {embeddings.shape}")
  if method == "pca":
    from sklearn.decomposition import PCA  # pylint: disable=g-import-not-at-top
    return PCA(n_components=2, random_state=seed).fit_transform(embeddings)
  if method == "tsne":
    from sklearn.manifold import TSNE  # pylint: disable=g-import-not-at-top
    perplexity = min(30.0, (len(embeddings) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(embeddings)
  raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")


def plot_projection(embeddings: np.ndarray, labels: np.ndarray, *, method: str = "pca",
                    max_identities: int = 12, seed: int = 0) -> Figure:
  """Scatter of the 2-D projection of the embeddings of the first `max_identities` people, one colour each."""
  labels = np.asarray(labels)
  keep = np.isin(labels, np.unique(labels)[:max_identities])
  points = project_2d(np.asarray(embeddings)[keep], method, seed=seed)
  fig = Figure(figsize=(5, 5), layout="constrained")
  ax = fig.subplots()
  ids = np.unique(labels[keep])
  colours = _colours(len(ids))
  for colour, identity in zip(colours, ids):
    sel = labels[keep] == identity
    ax.scatter(points[sel, 0], points[sel, 1], s=14, color=colour, label=str(identity))
  ax.set(title=f"{method.upper()} of test embeddings ({len(ids)} identities)", xticks=[], yticks=[])
  if len(ids) <= 12:
    ax.legend(fontsize=6, title="identity", title_fontsize=7, loc="best")
  return fig


def plot_roc(far: np.ndarray, tar: np.ndarray, auc: float) -> Figure:
  """True-accept rate against false-accept rate (log-scaled FAR shows the low-FAR end)."""
  fig = Figure(figsize=(5, 4), layout="constrained")
  ax = fig.subplots()
  ax.plot(np.maximum(far, 1e-5), tar, label=f"AUC = {auc:.4f}")
  ax.set(xscale="log", xlim=(1e-4, 1), ylim=(0, 1.01), xlabel="false accept rate", ylabel="true accept rate",
         title="Verification ROC on unseen identities")
  ax.grid(alpha=0.3)
  ax.legend(loc="lower right")
  return fig


def plot_distance_histograms(distances: np.ndarray, same: np.ndarray, threshold: float | None = None) -> Figure:
  """Histograms of the distances of same-identity and different-identity pairs."""
  distances, same = np.asarray(distances), np.asarray(same, bool)
  fig = Figure(figsize=(5, 3.5), layout="constrained")
  ax = fig.subplots()
  bins = np.linspace(distances.min(), distances.max(), 50)
  ax.hist(distances[same], bins, alpha=0.6, density=True, label="same identity")
  ax.hist(distances[~same], bins, alpha=0.6, density=True, label="different identity")
  if threshold is not None:
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.3f}")
  ax.set(xlabel="embedding distance", ylabel="density", title="Pair distances")
  ax.legend()
  return fig


def _colours(n: int):
  from matplotlib import colormaps  # pylint: disable=g-import-not-at-top
  cmap = colormaps["tab20" if n > 10 else "tab10"]
  return [cmap(i % cmap.N) for i in range(n)]
