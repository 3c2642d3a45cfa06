"""Face verification and recognition: triplet losses, P x K sampling, verification metrics."""

from cnnjax.embedding.losses import (LOSSES, batch_all_triplet_loss, batch_hard_triplet_loss,
                                     binary_pair_loss, make_loss_fn, pair_features, pairwise_distances,
                                     random_triplet_loss, semihard_triplet_loss, triplet_loss)
from cnnjax.embedding.gallery import (compounded, identification_vs_gallery, pair_error_rates,
                                      predicted_top1)
from cnnjax.embedding.sampler import PKSampler
from cnnjax.embedding.verify import (best_threshold, kfold_accuracy, make_pairs, one_shot_recognition,
                                     pair_distances, pairs_from_names, read_pairs_file, recognize, roc,
                                     val_at_far, verification_report)

__all__ = [
    "LOSSES", "PKSampler", "batch_all_triplet_loss", "batch_hard_triplet_loss", "best_threshold",
    "binary_pair_loss", "compounded", "identification_vs_gallery", "kfold_accuracy", "make_loss_fn",
    "make_pairs", "one_shot_recognition", "pair_distances", "pair_error_rates", "pair_features",
    "pairs_from_names", "pairwise_distances", "predicted_top1", "random_triplet_loss", "read_pairs_file",
    "recognize", "roc", "semihard_triplet_loss", "triplet_loss", "val_at_far", "verification_report",
]
