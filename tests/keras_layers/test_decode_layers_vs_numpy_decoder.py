"""The decode layers give the same detections as the numpy decoders (property, issue 3)."""

import importlib.util

import keras
import numpy as np
import pytest

from keras_layers import DecodeDetections, DecodeDetectionsFast

if importlib.util.find_spec("ssd_encoder_decoder.ssd_output_decoder") is None:
    pytest.skip(
        "ssd_encoder_decoder.ssd_output_decoder (numpy decoders) is not there yet",
        allow_module_level=True,
    )

from ssd_encoder_decoder.ssd_output_decoder import (  # noqa: E402
    decode_detections,
    decode_detections_fast,
)

KWARGS = {"iou_threshold": 0.45, "top_k": 200, "normalize_coords": True}
SIZE = {"img_height": 300, "img_width": 300}


def by_confidence(rows):
    rows = np.asarray(rows, np.float32).reshape(-1, 6)
    return rows[np.lexsort((rows[:, 0], -rows[:, 1]))]


@pytest.mark.parametrize(
    ("layer_class", "numpy_decoder", "thresh"),
    [
        (DecodeDetections, decode_detections, 0.01),
        (DecodeDetectionsFast, decode_detections_fast, 0.5),
    ],
    ids=["per_class", "fast"],
)
def test_layer_equals_numpy_decoder_on_golden_y_pred(golden, layer_class, numpy_decoder, thresh):
    y_pred = golden("decoder_ssd300").npz["y_pred"]
    layer = layer_class(confidence_thresh=thresh, nms_max_output_size=400, **KWARGS, **SIZE)
    output = np.asarray(keras.ops.convert_to_numpy(layer(y_pred)))
    expected = numpy_decoder(
        y_pred, confidence_thresh=thresh, input_coords="centroids", **KWARGS, **SIZE
    )
    for b in range(len(y_pred)):
        rows = output[b][np.any(output[b] != 0, axis=1)]
        # Same boxes in the same order (the layer sorts by confidence; so do we here for numpy).
        np.testing.assert_allclose(rows, by_confidence(expected[b]), rtol=0, atol=1e-4)


def random_y_pred(rng, coords, batch=2, n_anchors=300, n_classes=4):
    """A random SSD output with clustered boxes: softmax scores, offsets, anchors, variances."""
    logits = rng.normal(0, 1.5, size=(batch, n_anchors, n_classes + 1))
    logits[..., 0] += 2.0
    scores = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    centres = rng.uniform(0.1, 0.9, size=(6, 2))[rng.integers(0, 6, n_anchors)]
    centres = centres + rng.normal(0, 0.03, size=centres.shape)
    sizes = rng.uniform(0.05, 0.3, size=(n_anchors, 2))
    corners = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1)
    anchors = {
        "centroids": np.concatenate([centres, sizes], 1),
        "corners": corners,
        "minmax": corners[:, [0, 2, 1, 3]],
    }[coords]
    variances = np.array([0.1, 0.1, 0.2, 0.2])
    offsets = rng.normal(0, 0.5, size=(batch, n_anchors, 4))
    tail = np.broadcast_to(
        np.concatenate([anchors, np.tile(variances, (n_anchors, 1))], 1), (batch, n_anchors, 8)
    )
    return np.concatenate([scores, offsets, tail], -1).astype(np.float32)


@pytest.mark.parametrize("coords", ["centroids", "minmax", "corners"])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    ("layer_class", "numpy_decoder", "thresh"),
    [
        (DecodeDetections, decode_detections, 0.05),
        (DecodeDetectionsFast, decode_detections_fast, 0.3),
    ],
    ids=["per_class", "fast"],
)
def test_layer_equals_numpy_decoder_on_random_y_pred(
    layer_class, numpy_decoder, thresh, coords, seed
):
    rng = np.random.default_rng(seed)
    y_pred = random_y_pred(rng, coords)
    kwargs = dict(KWARGS, top_k=60)  # a cut that binds
    layer = layer_class(
        confidence_thresh=thresh, nms_max_output_size=10_000, coords=coords, **kwargs, **SIZE
    )
    output = np.asarray(keras.ops.convert_to_numpy(layer(y_pred)))
    expected = numpy_decoder(
        y_pred, confidence_thresh=thresh, input_coords=coords, **kwargs, **SIZE
    )
    for b in range(len(y_pred)):
        rows = output[b][np.any(output[b] != 0, axis=1)]
        assert len(rows) > 0
        np.testing.assert_allclose(rows, by_confidence(expected[b]), rtol=0, atol=1e-4)
