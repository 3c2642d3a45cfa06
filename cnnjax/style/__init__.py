"""Neural style transfer: Gram-matrix costs, VGG features and pixel optimisation."""

from cnnjax.style.costs import (content_cost, gram_cost, gram_matrix, style_cost, style_cost_from_grams,
                                style_layer_cost, total_cost, total_variation)
from cnnjax.style.extractor import init_vgg_params, layer_names, preprocess, resolve_weights, vgg_features
from cnnjax.style.images import load_image, save_image
from cnnjax.style.transfer import preserve_color, restore_color, stylize

__all__ = [
    "content_cost", "gram_cost", "gram_matrix", "init_vgg_params", "layer_names", "load_image", "preprocess",
    "preserve_color", "resolve_weights", "restore_color", "save_image", "style_cost", "style_cost_from_grams",
    "style_layer_cost", "stylize", "total_cost", "total_variation", "vgg_features",
]
