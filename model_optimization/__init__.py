"""Model optimisation: pruning, quantisation and export to TFLite / ONNX."""
