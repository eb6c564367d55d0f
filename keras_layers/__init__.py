"""Custom Keras 3 layers: AnchorBoxes, L2Normalization and the decode layers."""
