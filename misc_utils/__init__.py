"""Miscellaneous utilities, chiefly weight sampling for transfer learning."""

from misc_utils.weight_sampling import (
    CONF_LAYER_PATTERN,
    WeightSamplingReport,
    class_indices,
    read_ssd_weights,
    sample_ssd_weights,
    set_weights_by_name,
    write_legacy_weights,
)

__all__ = [
    "CONF_LAYER_PATTERN",
    "WeightSamplingReport",
    "class_indices",
    "read_ssd_weights",
    "sample_ssd_weights",
    "set_weights_by_name",
    "write_legacy_weights",
]
