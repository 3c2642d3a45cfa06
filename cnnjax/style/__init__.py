"""Neural style transfer: Gram-matrix costs, VGG features and pixel optimisation."""

from cnnjax.style.costs import (content_cost, gram_cost, gram_matrix, style_cost, style_cost_from_grams,
                                style_layer_cost, total_cost, total_variation)
from cnnjax.style.features import init_vgg_params, layer_names, preprocess, vgg_features

__all__ = [
    "content_cost", "gram_cost", "gram_matrix", "init_vgg_params", "layer_names", "preprocess",
    "style_cost", "style_cost_from_grams", "style_layer_cost", "total_cost", "total_variation",
    "vgg_features",
]
