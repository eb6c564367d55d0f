"""numpy anchors, ground-truth encoding, matching and decoding (with NMS) for SSD."""

from ssd_encoder_decoder.anchor_boxes import (
    PredictorLayerAnchors,
    generate_anchor_boxes_for_layer,
    generate_anchors,
    n_boxes_per_location,
    resolve_anchor_config,
)
from ssd_encoder_decoder.matching_utils import match_bipartite_greedy, match_multi
from ssd_encoder_decoder.ssd_input_encoder import DegenerateBoxError, SSDInputEncoder
from ssd_encoder_decoder.ssd_output_decoder import (
    apply_inverse_transforms,
    decode_boxes,
    decode_detections,
    decode_detections_debug,
    decode_detections_fast,
    get_num_boxes_per_pred_layer,
    get_pred_layers,
    greedy_nms,
)

__all__ = [
    "PredictorLayerAnchors",
    "generate_anchor_boxes_for_layer",
    "generate_anchors",
    "n_boxes_per_location",
    "resolve_anchor_config",
    "match_bipartite_greedy",
    "match_multi",
    "DegenerateBoxError",
    "SSDInputEncoder",
    "apply_inverse_transforms",
    "decode_boxes",
    "decode_detections",
    "decode_detections_debug",
    "decode_detections_fast",
    "get_num_boxes_per_pred_layer",
    "get_pred_layers",
    "greedy_nms",
]
