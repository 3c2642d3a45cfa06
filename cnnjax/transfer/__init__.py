"""Transfer learning: weight-file converters, pretrained parameters under a new head, and layer freezing."""

from cnnjax.transfer.convert import (VGGWeights, convert_keras_vgg, convert_torchvision_resnet, convert_torchvision_vgg,
                                     load_state_dict, load_vgg)
from cnnjax.transfer.cached_head import LinearHead, cached_features, splice_head
from cnnjax.transfer.freeze import freeze_optimizer, merge_pretrained, trainable_labels

__all__ = ["LinearHead", "VGGWeights", "cached_features", "convert_keras_vgg", "convert_torchvision_resnet",
           "convert_torchvision_vgg", "freeze_optimizer", "load_state_dict", "load_vgg", "merge_pretrained",
           "splice_head", "trainable_labels"]
