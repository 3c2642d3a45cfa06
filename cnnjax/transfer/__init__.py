"""Transfer learning: weight-file converters (and layer freezing)."""

from cnnjax.transfer.convert import (VGGWeights, check_shapes, convert_keras_vgg, convert_torchvision_vgg,
                                     load_state_dict, load_vgg)

__all__ = ["VGGWeights", "check_shapes", "convert_keras_vgg", "convert_torchvision_vgg", "load_state_dict",
           "load_vgg"]
