"""DecodeDetections / DecodeDetectionsFast: golden parity, brute-force NMS, edge cases, saving."""

import keras
import numpy as np
import pytest

import keras_layers.detection_ops as detection_ops
from bench import loop_references as reference
from keras_layers import DecodeDetections, DecodeDetectionsFast
from keras_layers.detection_ops import decode_box_offsets, greedy_nms_top_k

GOLDEN_KWARGS = {
    "iou_threshold": 0.45,
    "top_k": 200,
    "nms_max_output_size": 400,
    "coords": "centroids",
    "normalize_coords": True,
    "img_height": 300,
    "img_width": 300,
}


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def valid_rows(output):
    """The non-padding rows of one image's ``(top_k, 6)`` output."""
    return output[np.any(output != 0, axis=1)]


def sort_rows(rows):
    """Rows sorted by (-conf, class_id), the order of the golden numpy outputs."""
    return rows[np.lexsort((rows[:, 0], -rows[:, 1]))]


def assert_same_detections(actual, expected):
    """Class and confidence exact, boxes to 1e-3 px (the golden README's tolerance)."""
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual[:, :2], expected[:, :2])
    np.testing.assert_allclose(actual[:, 2:], expected[:, 2:], rtol=0, atol=1e-3)


@pytest.fixture(scope="module")
def decoder_golden(golden):
    return golden("decoder_ssd300")


@pytest.mark.parametrize(
    ("layer_class", "thresh", "layer_key", "numpy_key", "rows"),
    [
        (DecodeDetections, 0.01, "decode_layer", "decode_detections", [200, 200, 200]),
        (DecodeDetectionsFast, 0.5, "decode_layer_fast", "decode_detections_fast", [18, 18, 16]),
    ],
    ids=["per_class", "fast"],
)
def test_matches_original(decoder_golden, layer_class, thresh, layer_key, numpy_key, rows):
    fixture = decoder_golden.npz
    layer = layer_class(confidence_thresh=thresh, **GOLDEN_KWARGS)
    output = to_numpy(layer(fixture["y_pred"]))
    expected_layer = fixture[layer_key]
    assert output.shape == expected_layer.shape == (3, 200, 6)
    for b in range(3):
        # Same rows in the same (confidence) order as the original layer, zero padding after.
        assert len(valid_rows(output[b])) == rows[b]
        np.testing.assert_array_equal(output[b, rows[b] :], 0)
        assert_same_detections(output[b, : rows[b]], expected_layer[b, : rows[b]])
        # And the same set as the original numpy decoder (golden rows sorted by (-conf, class)).
        assert_same_detections(sort_rows(valid_rows(output[b])), fixture[f"{numpy_key}_{b}"])
    assert np.all(np.diff(output[..., 1], axis=1) <= 0)  # sorted by confidence (bug 11 fixed)


@pytest.mark.parametrize("layer_class", [DecodeDetections, DecodeDetectionsFast])
def test_nothing_survives_gives_zeros(decoder_golden, layer_class):
    layer = layer_class(confidence_thresh=0.999, **GOLDEN_KWARGS)
    output = to_numpy(layer(decoder_golden.npz["y_pred"]))
    assert output.shape == (3, 200, 6)
    np.testing.assert_array_equal(output, 0)


@pytest.mark.parametrize("case_index", [0, 1])
def test_greedy_nms_golden_cases(golden, case_index):
    # Exact ties: IoU exactly equal to the threshold (90/200 = 0.45, 50/100 = 0.5) keeps the box,
    # a kept box suppresses a box of another class in class-agnostic mode, and a suppressed box
    # does not suppress (see ../shared/golden/README.md, section 4).
    case = golden("greedy_nms").meta["cases"][case_index]
    images = [np.array(rows, dtype=np.float32).reshape(-1, 6) for rows in case["y_pred_decoded"]]
    n = max(len(rows) for rows in images)
    padded = np.zeros((len(images), n, 6), np.float32)
    present = np.zeros((len(images), n, 1), bool)
    for b, rows in enumerate(images):
        padded[b, : len(rows)] = rows
        present[b, : len(rows)] = True
    output = to_numpy(
        greedy_nms_top_k(
            keras.ops.convert_to_tensor(padded[..., 2:]),
            keras.ops.convert_to_tensor(padded[..., :1]),
            keras.ops.convert_to_tensor(padded[..., 1:2]),
            keras.ops.convert_to_tensor(present),
            case["iou_threshold"],
            top_k=n,
            max_per_group=n,
            group_by_column=False,
        )
    )
    for b, expected in enumerate(case["expected"]):
        expected = np.array(expected, np.float32).reshape(-1, 6)
        np.testing.assert_array_equal(valid_rows(output[b]), expected)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("per_group", [True, False], ids=["per_class", "class_agnostic"])
def test_nms_equals_brute_force_reference(monkeypatch, seed, per_group):
    # Clustered random boxes (many overlaps and suppression chains), 3 columns of scores, a
    # small chunk so that the loop over chunks and the suppression across chunks are exercised,
    # and per-group caps and top_k cuts that bind. Odd seeds round the scores to 0.1, so many
    # candidates tie (also across chunk boundaries): ties go by anchor, then column.
    monkeypatch.setattr(detection_ops, "CHUNK_SIZE", 7)
    rng = np.random.default_rng(seed)
    batch, n_anchors, n_columns = 2, 40, 3
    centres = rng.uniform(0, 100, size=(batch, 5, 2))[:, rng.integers(0, 5, n_anchors)]
    centres += rng.normal(0, 4, size=centres.shape)
    sizes = rng.uniform(5, 30, size=(batch, n_anchors, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], -1).astype(np.float32)
    scores = rng.uniform(0, 1, size=(batch, n_anchors, n_columns)).astype(np.float32)
    if seed % 2:
        scores = np.round(scores, 1)
    class_ids = np.broadcast_to(np.arange(1, n_columns + 1, dtype=np.float32), scores.shape)
    candidates = scores > 0.2
    top_k, cap, iou_threshold = int(rng.integers(5, 40)), int(rng.integers(3, 15)), 0.3
    expected = reference.nms_top_k(
        boxes, scores, class_ids, candidates, iou_threshold, top_k, cap, per_group
    )
    actual = to_numpy(
        greedy_nms_top_k(
            *(keras.ops.convert_to_tensor(x) for x in (boxes, class_ids, scores, candidates)),
            iou_threshold,
            top_k,
            cap,
            group_by_column=per_group,
        )
    )
    np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("coords", ["centroids", "minmax", "corners"])
def test_decode_box_offsets_inverts_the_encoding(coords):
    # Encode known boxes against known anchors with the SSD formulas, decode, get the boxes back.
    rng = np.random.default_rng(1)
    gt = np.array([[30.0, 40.0, 130.0, 90.0], [200.0, 10.0, 290.0, 280.0]])  # corners, px
    anchors = np.array([[50.0, 50.0, 120.0, 80.0], [240.0, 150.0, 100.0, 240.0]])  # centroids
    variances = np.array([0.1, 0.1, 0.2, 0.2])
    a_corners = np.concatenate(
        [anchors[:, :2] - anchors[:, 2:] / 2, anchors[:, :2] + anchors[:, 2:] / 2], 1
    )
    a_w, a_h = anchors[:, 2:3], anchors[:, 3:4]
    if coords == "centroids":
        g_c = (gt[:, :2] + gt[:, 2:]) / 2
        g_s = gt[:, 2:] - gt[:, :2]
        offsets = np.concatenate(
            [(g_c - anchors[:, :2]) / anchors[:, 2:], np.log(g_s / anchors[:, 2:])], 1
        )
        anchor_cols = anchors
    elif coords == "corners":
        offsets = (gt - a_corners) / np.concatenate([a_w, a_h, a_w, a_h], 1)
        anchor_cols = a_corners
    else:  # minmax: (xmin, xmax, ymin, ymax)
        order = [0, 2, 1, 3]
        offsets = (gt[:, order] - a_corners[:, order]) / np.concatenate([a_w, a_w, a_h, a_h], 1)
        anchor_cols = a_corners[:, order]
    size = np.array([300.0, 300.0, 300.0, 300.0])
    y_pred = np.concatenate(
        [
            rng.uniform(size=(2, 3)),
            offsets / variances,
            anchor_cols / size,
            np.tile(variances, (2, 1)),
        ],
        1,
    )[None].astype(np.float32)
    decoded = to_numpy(decode_box_offsets(y_pred, coords, True, 300, 300))
    np.testing.assert_allclose(decoded[0], gt, rtol=0, atol=1e-3)


@pytest.mark.parametrize("layer_class", [DecodeDetections, DecodeDetectionsFast])
def test_layer_checks(layer_checker, decoder_golden, layer_class):
    y_pred = decoder_golden.npz["y_pred"][:2]
    layer = layer_class(confidence_thresh=0.3, **dict(GOLDEN_KWARGS, top_k=50), name="decoded")
    # rtol: eager and compiled (model.predict) runs may differ in the last bit of a box coordinate.
    output = layer_checker(layer, y_pred, (2, 50, 6), rtol=1e-6)
    assert len(valid_rows(output[0])) > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"img_height": None}, "img_height"),
        ({"coords": "xyxy"}, "coords"),
        ({"confidence_thresh": 1.5}, "confidence_thresh"),
        ({"iou_threshold": -0.1}, "iou_threshold"),
        ({"top_k": 0}, "top_k"),
        ({"nms_max_output_size": 0}, "nms_max_output_size"),
    ],
)
@pytest.mark.parametrize("layer_class", [DecodeDetections, DecodeDetectionsFast])
def test_bad_arguments(layer_class, change, message):
    with pytest.raises(ValueError, match=message):
        layer_class(**dict(GOLDEN_KWARGS, **change))


def test_wrong_input_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="n_classes"):
        DecodeDetections(**GOLDEN_KWARGS)(keras.Input((100, 12)))


def test_mixed_precision_policy_keeps_float32_decoding(decoder_golden):
    # Under mixed_float16 the decode layer still computes in float32 (a float16 box coordinate
    # near 300 px could only be a multiple of 0.25), so it still matches the original.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = DecodeDetections(confidence_thresh=0.01, **GOLDEN_KWARGS)
        output = to_numpy(layer(decoder_golden.npz["y_pred"][:1]))
    finally:
        keras.config.set_dtype_policy(previous)
    assert layer.compute_dtype == "float32"
    assert_same_detections(output[0], decoder_golden.npz["decode_layer"][0])


def test_fast_layer_breaks_class_score_ties_like_numpy_argmax():
    # DecodeDetectionsFast picks each anchor's class as the first column holding the maximum
    # (np.argmax's rule; written without ops.argmax, whose TensorFlow form has no ONNX op).
    # Anchor 0: background ties class 1 -> background wins -> dropped. Anchor 1: classes 2 and 3
    # tie at 0.35 -> class 2. Anchor 2: class 3 (0.4). Anchors are 4x4 boxes far apart (no NMS
    # interaction), zero offsets: box = anchor, e.g. centre (50, 10) -> (48, 8, 52, 12).
    scores = np.array([[0.4, 0.4, 0.1, 0.1], [0.1, 0.2, 0.35, 0.35], [0.0, 0.3, 0.3, 0.4]])
    anchors = np.array([[10, 10, 4, 4], [50, 10, 4, 4], [90, 10, 4, 4]], dtype=float)
    y_pred = np.concatenate([scores, np.zeros((3, 4)), anchors, np.ones((3, 4))], axis=1)
    layer = DecodeDetectionsFast(
        confidence_thresh=0.01, iou_threshold=0.45, top_k=3, normalize_coords=False
    )
    output = to_numpy(layer(y_pred[None].astype("float32")))[0]
    expected = [[3, 0.4, 88, 8, 92, 12], [2, 0.35, 48, 8, 52, 12], [0, 0, 0, 0, 0, 0]]
    np.testing.assert_allclose(output, expected, atol=1e-6)
    assert np.argmax(scores[1]) == 2  # the rule it follows
