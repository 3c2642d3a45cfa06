"""Face verification and recognition: triplet losses, P x K sampling, verification metrics."""

from cnnjax.embedding.losses import (batch_all_triplet_loss, batch_hard_triplet_loss, binary_pair_loss,
                                     pair_features, pairwise_distances, random_triplet_loss,
                                     semihard_triplet_loss, triplet_loss)
from cnnjax.embedding.sampler import PKSampler
from cnnjax.embedding.verify import (kfold_accuracy, make_pairs, one_shot_recognition, pair_distances,
                                     recognize, roc, val_at_far, verification_report)

__all__ = [
    "PKSampler", "batch_all_triplet_loss", "batch_hard_triplet_loss", "binary_pair_loss",
    "kfold_accuracy", "make_pairs", "one_shot_recognition", "pair_distances", "pair_features",
    "pairwise_distances", "random_triplet_loss", "recognize", "roc", "semihard_triplet_loss",
    "triplet_loss", "val_at_far", "verification_report",
]
