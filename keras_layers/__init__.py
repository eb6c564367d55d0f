"""Custom Keras 3 layers: AnchorBoxes, L2Normalization and the decode layers."""

from keras_layers.keras_layer_AnchorBoxes import AnchorBoxes
from keras_layers.keras_layer_L2Normalization import L2Normalization

__all__ = ["AnchorBoxes", "L2Normalization"]
