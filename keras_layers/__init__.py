"""Custom Keras 3 layers: AnchorBoxes, L2Normalization and the decode layers."""

from keras_layers.keras_layer_AnchorBoxes import AnchorBoxes
from keras_layers.keras_layer_DecodeDetections import DecodeDetections
from keras_layers.keras_layer_DecodeDetectionsFast import DecodeDetectionsFast
from keras_layers.keras_layer_L2Normalization import L2Normalization

__all__ = ["AnchorBoxes", "DecodeDetections", "DecodeDetectionsFast", "L2Normalization"]
