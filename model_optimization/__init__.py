"""Model optimisation: pruning, quantisation and export to TFLite / ONNX.

- `model_optimization.pruning`: magnitude pruning (`prune_low_magnitude`, `ConstantSparsity`,
  `PolynomialDecay`, `UpdatePruningStep`, `strip_pruning`, `sparsity_report`).
- `model_optimization.structured`: filter pruning (`prune_filters`, `select_filters`,
  `remove_filters`, `prunable_filters`, `filter_pruning_report`).
- `model_optimization.folding`: `fold_batch_norm`, BatchNormalization folded into the
  convolution before it (the inference form that ``predict``/``evaluate`` run).
- `model_optimization.export`: `export` to SavedModel / TFLite (float16, int8) / ONNX and the
  `LiteRTRunner`, `OnnxRunner`, `OpenVinoRunner`, `SavedModelRunner`, `KerasRunner` runners
  (`load_runner`).
"""

from model_optimization.export import (
    KerasRunner,
    LiteRTRunner,
    OnnxRunner,
    OpenVinoRunner,
    SavedModelRunner,
    export,
    load_runner,
    split_ssd_constants,
    strip_decoder,
)
from model_optimization.folding import fold_batch_norm, foldable_pairs
from model_optimization.pruning import (
    ConstantSparsity,
    PolynomialDecay,
    PruneLowMagnitude,
    UpdatePruningStep,
    format_sparsity_report,
    prune_low_magnitude,
    sparsity_report,
    strip_pruning,
)
from model_optimization.structured import (
    filter_pruning_report,
    prunable_filters,
    prune_filters,
    remove_filters,
    select_filters,
)

__all__ = [
    "ConstantSparsity",
    "KerasRunner",
    "LiteRTRunner",
    "OnnxRunner",
    "OpenVinoRunner",
    "PolynomialDecay",
    "PruneLowMagnitude",
    "SavedModelRunner",
    "UpdatePruningStep",
    "export",
    "filter_pruning_report",
    "fold_batch_norm",
    "foldable_pairs",
    "format_sparsity_report",
    "load_runner",
    "prunable_filters",
    "prune_filters",
    "prune_low_magnitude",
    "remove_filters",
    "select_filters",
    "sparsity_report",
    "split_ssd_constants",
    "strip_decoder",
    "strip_pruning",
]
