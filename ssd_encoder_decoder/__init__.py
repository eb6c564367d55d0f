"""numpy anchors, ground-truth encoding, matching and decoding (with NMS) for SSD."""

from ssd_encoder_decoder.anchor_boxes import (
    PredictorLayerAnchors,
    generate_anchor_boxes_for_layer,
    generate_anchors,
    n_boxes_per_location,
    resolve_anchor_config,
)

__all__ = [
    "PredictorLayerAnchors",
    "generate_anchor_boxes_for_layer",
    "generate_anchors",
    "n_boxes_per_location",
    "resolve_anchor_config",
]
