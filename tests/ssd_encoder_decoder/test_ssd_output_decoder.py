"""Tests of the decoders and greedy NMS: golden parity, brute-force references, hand cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import loop_references as reference
from bounding_box_utils import convert_coordinates, iou
from ssd_encoder_decoder.nms import suppression_pairs
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

# ---------------------------------------------------------------------------------- golden


def test_golden_decode_detections(golden):
    fixture = golden("decoder_ssd300")
    case = next(c for c in fixture.meta["cases"] if c["name"] == "decode_detections")
    y_pred = fixture.npz["y_pred"]
    for dtype in (np.float32, np.float64):  # the fixture says float64 gives the same rows
        detections = decode_detections(y_pred.astype(dtype), **case["kwargs"])
        for b, rows in enumerate(detections):
            expected = fixture.npz[f"decode_detections_{b}"]
            assert rows.shape == expected.shape == (200, 6)
            np.testing.assert_array_equal(rows[:, 0], expected[:, 0])
            np.testing.assert_array_equal(rows[:, 1].astype(np.float32), expected[:, 1])
            np.testing.assert_allclose(rows[:, 2:], expected[:, 2:], atol=1e-3)
            assert np.all(np.diff(rows[:, 1]) <= 0)  # sorted (the original was not)


def test_golden_decode_detections_fast(golden):
    fixture = golden("decoder_ssd300")
    case = next(c for c in fixture.meta["cases"] if c["name"] == "decode_detections_fast")
    detections = decode_detections_fast(fixture.npz["y_pred"], **case["kwargs"])
    for b, rows in enumerate(detections):
        expected = fixture.npz[f"decode_detections_fast_{b}"]
        assert rows.shape == expected.shape
        np.testing.assert_array_equal(rows[:, :2], expected[:, :2])
        np.testing.assert_allclose(rows[:, 2:], expected[:, 2:], atol=1e-3)


def test_golden_nothing_survives(golden):
    fixture = golden("decoder_ssd300")
    case = next(c for c in fixture.meta["cases"] if c["name"] == "nothing_survives")
    for decoder in (decode_detections, decode_detections_fast):
        detections = decoder(fixture.npz["y_pred"], **case["kwargs"])
        assert [d.shape for d in detections] == [(0, 6)] * 3  # the original gave (0,)


def test_golden_greedy_nms(golden):
    for case in golden("greedy_nms").meta["cases"]:
        inputs = [np.array(x, dtype=np.float64).reshape(-1, 6) for x in case["y_pred_decoded"]]
        kept = greedy_nms(inputs, case["iou_threshold"], case["coords"], case["border_pixels"])
        for got, expected in zip(kept, case["expected"]):
            np.testing.assert_array_equal(got, np.array(expected).reshape(-1, 6))


# ------------------------------------------------------------------------------ hand cases


def test_iou_exactly_at_the_threshold_is_kept():
    # Suppression needs IoU > threshold: an IoU equal to it (45 / 100 = 0.45, 100 / 200 = 0.5,
    # both exact in float64) keeps the box.
    rows = np.array(
        [
            [1, 0.9, 0, 0, 10, 10],  # A
            [1, 0.8, 1, 0, 11, 9],  # IoU with A = 81 / (100 + 90 - 81) = 0.743 -> dropped
            [1, 0.7, 0, 0, 10, 20],  # IoU with A = 100 / 200 = 0.5 -> dropped at 0.45
            [1, 0.6, 0, 0, 10, 4.5],  # IoU with A = 45 / 100 = 0.45 exactly -> kept
        ]
    )
    kept = greedy_nms([rows], iou_threshold=0.45)[0]
    np.testing.assert_array_equal(kept[:, 1], [0.9, 0.6])
    # At 0.5 the third row is kept; the fourth overlaps it by 45 / 200 < 0.5 and stays too.
    kept = greedy_nms([rows], iou_threshold=0.5)[0]
    np.testing.assert_array_equal(kept[:, 1], [0.9, 0.7, 0.6])


def test_only_kept_boxes_suppress():
    # A > B > C in confidence; B overlaps A (suppressed), C overlaps B but not A -> kept.
    rows = np.array(
        [[1, 0.9, 0, 0, 10, 10], [1, 0.8, 5, 0, 15, 10], [1, 0.7, 10, 0, 20, 10]], dtype=float
    )
    kept = greedy_nms([rows], iou_threshold=0.3)[0]
    np.testing.assert_array_equal(kept[:, 1], [0.9, 0.7])


def test_confidence_ties_keep_the_earlier_row():
    rows = np.array([[1, 0.5, 0, 0, 10, 10], [2, 0.5, 1, 1, 10, 10]], dtype=float)
    np.testing.assert_array_equal(greedy_nms([rows], 0.45)[0], rows[:1])


def test_extreme_thresholds():
    rows = np.array(
        [[1, 0.2, 0, 0, 10, 10], [1, 0.9, 50, 50, 60, 60], [1, 0.5, 0, 0, 10, 10]], dtype=float
    )
    # Negative threshold: every IoU (>= 0) exceeds it, only the most confident row survives.
    np.testing.assert_array_equal(greedy_nms([rows], -0.1)[0], rows[[1]])
    # Threshold 0: overlapping boxes suppress each other, disjoint ones do not.
    np.testing.assert_array_equal(greedy_nms([rows], 0.0)[0], rows[[1, 2]])
    # Threshold 1: nothing is suppressed (identical boxes have IoU exactly 1).
    np.testing.assert_array_equal(greedy_nms([rows], 1.0)[0], rows[[1, 2, 0]])


def test_greedy_nms_other_coords_and_empty():
    corners = np.array([[1, 0.9, 0, 0, 10, 10], [1, 0.8, 1, 0, 11, 10], [1, 0.7, 30, 30, 40, 40]])
    centroids = convert_coordinates(corners, 2, "corners2centroids")
    kept = greedy_nms([centroids, np.zeros((0, 6))], 0.45, coords="centroids")
    np.testing.assert_array_equal(kept[0][:, 1], [0.9, 0.7])
    assert kept[1].shape == (0, 6)
    with pytest.raises(ValueError, match="coords"):
        greedy_nms([corners], 0.45, coords="xywh")


def test_decoder_argument_errors():
    y_pred = np.zeros((1, 4, 14), dtype=np.float32)
    with pytest.raises(ValueError, match="img_height"):
        decode_detections(y_pred)
    with pytest.raises(ValueError, match="top_k"):
        decode_detections(y_pred, top_k="some", img_height=1, img_width=1)
    with pytest.raises(ValueError, match="y_pred"):
        decode_detections(np.zeros((4, 14)), img_height=1, img_width=1)
    with pytest.raises(ValueError, match="input_coords"):
        decode_detections(y_pred, input_coords="xywh", img_height=1, img_width=1)


def test_inverse_transform_hook():
    def shift(rows):
        rows = rows.copy()
        rows[:, [2, 4]] += 100
        return rows

    def halve(rows):
        rows = rows.copy()
        rows[:, 2:] /= 2
        return rows

    decoded = [np.array([[1, 0.9, 10, 20, 30, 40]]), np.zeros((0, 6))]
    inverted = apply_inverse_transforms(decoded, [[shift, None, halve], [shift]])
    np.testing.assert_array_equal(inverted[0], [[1, 0.9, 55, 10, 65, 20]])
    assert inverted[1].shape == (0, 6)
    np.testing.assert_array_equal(decoded[0], [[1, 0.9, 10, 20, 30, 40]])  # input untouched
    with pytest.raises(ValueError, match="inverse_transforms"):
        apply_inverse_transforms(decoded, [[shift]])


def test_inverse_transform_hook_takes_an_ndarray_batch():
    # Through this import path an array is always a batch and a list comes back (the decoders'
    # hook); the data_generator path returns an array for the same input.
    from data_generator.object_detection_2d_misc_utils import (
        apply_inverse_transforms as data_generator_path,
    )

    def shift(rows):
        rows = rows.copy()
        rows[:, [2, 4]] += 100
        return rows

    batch = np.array([[[1, 0.9, 10, 20, 30, 40]], [[2, 0.5, 1, 2, 3, 4]]])
    inverted = apply_inverse_transforms(batch, [[shift], []])
    assert isinstance(inverted, list) and len(inverted) == 2
    np.testing.assert_array_equal(inverted[0], [[1, 0.9, 110, 20, 130, 40]])
    np.testing.assert_array_equal(inverted[1], [[2, 0.5, 1, 2, 3, 4]])
    np.testing.assert_array_equal(np.stack(inverted), data_generator_path(batch, [[shift], []]))


# --------------------------------------------------------------------------- properties


@st.composite
def box_rows(draw):
    """Rows with integer boxes on a coarse grid (exact IoU ties) and tied confidences."""
    seed = draw(st.integers(0, 2**31 - 1))
    n = draw(st.integers(0, 60))
    rng = np.random.default_rng(seed)
    xy = rng.integers(0, 12, (n, 2)) * 5.0
    wh = rng.choice([5.0, 10.0, 20.0, 40.0], (n, 2))
    conf = rng.choice([0.3, 0.5, 0.7, 0.9], n)
    cls = rng.integers(1, 4, n)
    return np.column_stack([cls, conf, xy, xy + wh])


@settings(max_examples=80, deadline=None)
@given(
    box_rows(),
    st.sampled_from([0.0, 0.2, 0.25, 0.45, 0.5, 0.6, 1.0]),
    st.sampled_from(["half", "include", "exclude"]),
)
def test_greedy_nms_equals_the_reference_loop(rows, threshold, border_pixels):
    got = greedy_nms([rows], threshold, border_pixels=border_pixels)[0]
    expected = reference.greedy_nms(rows, threshold, border_pixels=border_pixels)
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.1, 0.3, 0.45, 0.7, 0.95]))
def test_suppression_pairs_equal_brute_force(seed, threshold):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 200))
    xy = rng.uniform(0, 100, (n, 2))
    wh = np.exp(rng.uniform(np.log(0.5), np.log(80), (n, 2)))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(rng.choice([np.float32, np.float64]))
    matrix = iou(boxes, boxes, coords="corners")
    i, j = np.nonzero(~(matrix <= threshold))
    expected = {(a, b) for a, b in zip(i.tolist(), j.tolist()) if a < b}
    i, j = suppression_pairs(boxes, threshold, "half")
    assert set(zip(i.tolist(), j.tolist())) == expected
    assert len(i) == len(expected)  # no duplicates


def test_suppression_pairs_with_degenerate_and_non_finite_boxes():
    boxes = np.array(
        [[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 5, 9], [np.nan, 0, 1, 1], [1, 1, 9, 9.5]]
    )
    i, j = suppression_pairs(boxes, 0.45, "half")
    matrix = iou(boxes, boxes, coords="corners")
    a, b = np.nonzero(~(matrix <= 0.45))
    assert set(zip(i.tolist(), j.tolist())) == {(x, y) for x, y in zip(a, b) if x < y}


def make_y_pred(rng, n_images, kind):
    """SSD-like predictions on a small anchor set (800 anchors, 5 classes)."""
    n, n_classes = 800, 6
    cx, cy = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    w, h = rng.choice([0.05, 0.1, 0.2, 0.4], n), rng.choice([0.05, 0.1, 0.2, 0.4], n)
    anchors = np.column_stack([cx, cy, w, h])
    logits = rng.normal(0, 0.5 if kind == "flat" else 2.0, (n_images, n, n_classes))
    scores = np.exp(logits)
    scores /= scores.sum(-1, keepdims=True)
    y = np.zeros((n_images, n, n_classes + 12))
    y[..., :n_classes] = scores
    y[..., n_classes : n_classes + 4] = rng.normal(0, 0.5, (n_images, n, 4))
    y[..., -8:-4] = anchors
    y[..., -4:] = [0.1, 0.1, 0.2, 0.2]
    return y.astype(np.float32)


IMAGE_200_300 = {"img_height": 200, "img_width": 300}


@pytest.mark.parametrize("kind", ["flat", "peaked"])
def test_decode_detections_equals_the_reference_loop(kind):
    rng = np.random.default_rng(11)
    y_pred = make_y_pred(rng, 3, kind)
    for top_k in (50, "all"):
        settings = dict(confidence_thresh=0.05, iou_threshold=0.45, top_k=top_k, **IMAGE_200_300)
        got = decode_detections(y_pred, **settings)
        expected = reference.decode_detections(y_pred, **settings)
        for a, b in zip(got, expected):
            assert a.dtype == np.float64
            np.testing.assert_array_equal(a, b)


def test_decode_detections_fast_equals_a_reference_loop():
    rng = np.random.default_rng(5)
    y_pred = make_y_pred(rng, 2, "peaked")
    kwargs = {"confidence_thresh": 0.4, "img_height": 200, "img_width": 300}
    got = decode_detections_fast(y_pred, iou_threshold=0.45, top_k="all", **kwargs)
    expected = reference.decode_detections_fast(y_pred, iou_threshold=0.45, top_k="all", **kwargs)
    for rows, expected_rows in zip(got, expected, strict=True):
        # The reference keeps rows by descending confidence, ties in anchor order, like ours.
        assert len(rows) > 0
        np.testing.assert_array_equal(rows, expected_rows)
    # iou_threshold=0 (falsy) skips NMS, as in the original.
    no_nms = decode_detections_fast(y_pred, iou_threshold=0, top_k="all", **kwargs)
    assert len(no_nms[0]) >= len(got[0])


def test_top_k_shortcut_equals_the_full_solution():
    """Only the top_k survivors are needed; the candidate subset must grow until enough survive.

    1050 jittered copies of one box hold the highest confidences, so the first 1000-candidate
    subset keeps a single survivor and the search has to widen; the answer must equal the full
    solution cut to top_k.
    """
    rng = np.random.default_rng(2)
    y_pred = make_y_pred(rng, 1, "flat").astype(np.float64)
    y_pred = np.repeat(y_pred, 2, axis=1)  # 1600 anchors, 5 classes
    y_pred[0, :1050, 1] = 0.9 + rng.uniform(0, 0.05, 1050)  # class 1: many near-copies
    y_pred[0, :1050, 6:10] = rng.normal(0, 0.01, (1050, 4))
    y_pred[0, :1050, -8:-4] = [0.5, 0.5, 0.2, 0.2]
    kwargs = {"iou_threshold": 0.45, "img_height": 100, "img_width": 100}
    full = decode_detections(y_pred, confidence_thresh=0.05, top_k="all", **kwargs)[0]
    for top_k in (5, 300):
        cut = decode_detections(y_pred, confidence_thresh=0.05, top_k=top_k, **kwargs)[0]
        np.testing.assert_array_equal(cut, full[:top_k])
    fast_all = decode_detections_fast(y_pred, confidence_thresh=0.3, top_k="all", **kwargs)[0]
    fast_cut = decode_detections_fast(y_pred, confidence_thresh=0.3, top_k=3, **kwargs)[0]
    np.testing.assert_array_equal(fast_cut, fast_all[:3])


@pytest.mark.parametrize("n_degenerate", [1, 2])
def test_decoding_survives_a_class_whose_candidates_are_all_degenerate(n_degenerate):
    """An untrained model can predict zero-width boxes (exp underflow); NMS must cope."""
    y = np.zeros((1, 3, 2 + 12))
    y[0, :, 1] = 0.9
    y[0, :, 6:10] = [0.5, 0.5, 0.2, 0.2]
    y[0, :, 10:14] = [0.1, 0.1, 0.2, 0.2]
    y[0, :n_degenerate, 4] = -1000.0  # width offset -> exp underflows -> zero width
    y[0, n_degenerate:, 1] = 0.0  # the other anchors are not candidates
    (out,) = decode_detections(y, confidence_thresh=0.5, img_height=300, img_width=300)
    assert out.shape == (n_degenerate, 6)
    np.testing.assert_array_equal(out[:, 0], 1)
    np.testing.assert_allclose(out[:, 2], out[:, 4])  # zero width, kept (IoU 0 suppresses nothing)


# --------------------------------------------------------------------- decode_detections_debug


def _check_debug_rows(debug, plain, y_pred, **kwargs):
    """Dropping box_id gives decode_detections' rows; box_id points at the row's anchor."""
    boxes = decode_boxes(y_pred, "centroids", True, kwargs["img_height"], kwargs["img_width"])
    for b, (rows, expected) in enumerate(zip(debug, plain)):
        assert rows.shape == (len(expected), 7) and rows.dtype == np.float64
        np.testing.assert_array_equal(rows[:, 1:], expected)
        box_id = rows[:, 0].astype(np.int64)
        np.testing.assert_array_equal(box_id, rows[:, 0])
        np.testing.assert_array_equal(rows[:, 2], y_pred[b, box_id, rows[:, 1].astype(int)])
        np.testing.assert_array_equal(rows[:, 3:], boxes[b, box_id])


def test_golden_decode_detections_debug(golden):
    fixture = golden("decoder_ssd300")
    case = next(c for c in fixture.meta["cases"] if c["name"] == "decode_detections")
    for dtype in (np.float32, np.float64):
        y_pred = fixture.npz["y_pred"].astype(dtype)
        debug = decode_detections_debug(y_pred, **case["kwargs"])
        _check_debug_rows(
            debug, decode_detections(y_pred, **case["kwargs"]), y_pred, **case["kwargs"]
        )
        for b, rows in enumerate(debug):
            expected = fixture.npz[f"decode_detections_{b}"]  # the original's rows
            np.testing.assert_array_equal(rows[:, 1], expected[:, 0])
            np.testing.assert_allclose(rows[:, 3:], expected[:, 2:], atol=1e-3)
    # Fixed original bug 13: it crashed on an image without detections; here (0, 7).
    case = next(c for c in fixture.meta["cases"] if c["name"] == "nothing_survives")
    debug = decode_detections_debug(fixture.npz["y_pred"], **case["kwargs"])
    assert [d.shape for d in debug] == [(0, 7)] * 3


@pytest.mark.parametrize("kind", ["flat", "peaked"])
def test_decode_detections_debug_equals_decode_detections_and_the_reference(kind):
    rng = np.random.default_rng(21)
    y_pred = make_y_pred(rng, 3, kind)
    for top_k in (50, "all"):
        settings = dict(confidence_thresh=0.05, iou_threshold=0.45, top_k=top_k, **IMAGE_200_300)
        debug = decode_detections_debug(y_pred, **settings)
        _check_debug_rows(debug, decode_detections(y_pred, **settings), y_pred, **IMAGE_200_300)
        for got, expected in zip(debug, reference.decode_detections_debug(y_pred, **settings)):
            np.testing.assert_array_equal(got, expected)


def test_decode_detections_debug_variance_encoded_in_target():
    rng = np.random.default_rng(4)
    y_pred = make_y_pred(rng, 2, "peaked").astype(np.float64)
    encoded = y_pred.copy()
    encoded[..., -12:-8] *= encoded[..., -4:]  # offsets already multiplied by the variances
    kwargs = {"confidence_thresh": 0.3, "img_height": 200, "img_width": 300}
    plain = decode_detections_debug(y_pred, **kwargs)
    pre_multiplied = decode_detections_debug(encoded, variance_encoded_in_target=True, **kwargs)
    for a, b in zip(plain, pre_multiplied):
        assert len(a) > 0
        np.testing.assert_array_equal(a[:, :3], b[:, :3])
        np.testing.assert_allclose(a[:, 3:], b[:, 3:], rtol=1e-12, atol=1e-9)


def test_get_num_boxes_per_pred_layer_and_get_pred_layers():
    from ssd_encoder_decoder.ssd_input_encoder import SSDInputEncoder

    sizes = [[38, 38], [19, 19], [10, 10], [5, 5], [3, 3], [1, 1]]
    ratios = [[1.0, 2.0, 0.5]] + [[1.0, 2.0, 0.5, 3.0, 1.0 / 3.0]] * 3 + [[1.0, 2.0, 0.5]] * 2
    counts = get_num_boxes_per_pred_layer(sizes, ratios, two_boxes_for_ar1=True)
    # 38*38*4, 19*19*6, 10*10*6, 5*5*6, 3*3*4, 1*1*4 (4 or 6 boxes: the ratios plus a second 1)
    assert counts == [5776, 2166, 600, 150, 36, 4] and sum(counts) == 8732
    encoder = SSDInputEncoder(
        img_height=300,
        img_width=300,
        n_classes=20,
        predictor_sizes=sizes,
        scales=[0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05],
        aspect_ratios_per_layer=ratios,
    )
    assert counts == [int(np.prod(boxes.shape[:3])) for boxes in encoder.boxes_list]
    # Without ratio 1 there is no second box (the original counted one anyway).
    assert get_num_boxes_per_pred_layer([[4, 4]], [[2.0, 0.5]], True) == [32]
    assert get_num_boxes_per_pred_layer([[4, 4], [2, 2]], [1.0, 2.0], False) == [32, 8]
    rows = np.zeros((6, 7))
    rows[:, 0] = [0, 5775, 5776, 8727, 8728, 8731]  # the last layers start at 8692 and 8728
    (layers,) = get_pred_layers([rows], counts)
    np.testing.assert_array_equal(layers, [0, 0, 1, 4, 5, 5])
    assert get_pred_layers([np.zeros((0, 7))], counts)[0].shape == (0,)
    rows[2, 0] = 8732
    with pytest.raises(ValueError, match=r"y_pred_decoded\[0\] row 2 has box_id 8732"):
        get_pred_layers([rows], counts)
    # End to end: a perfect prediction of one box is decoded from anchors of its own layers.
    y = encoder([np.array([[3, 20, 30, 60, 70], [5, 40, 20, 290, 280.0]])])
    y[~y[..., :21].any(axis=-1), 0] = 1.0  # neutral anchors predict background
    (rows,) = decode_detections_debug(y, confidence_thresh=0.5, img_height=300, img_width=300)
    (layers,) = get_pred_layers([rows], counts)
    assert rows[:, 1].tolist() == [3.0, 5.0] or rows[:, 1].tolist() == [5.0, 3.0]
    starts = np.cumsum(counts) - counts
    anchor_w = encoder.anchors[rows[:, 0].astype(int), 2] * 300
    assert (rows[:, 0] >= starts[layers]).all() and (rows[:, 0] < np.cumsum(counts)[layers]).all()
    # The small box (40 px) comes from a small anchor layer, the large one (250 px) from a later
    # layer with a much larger anchor.
    small, large = (0, 1) if rows[0, 1] == 3 else (1, 0)
    assert layers[small] < layers[large] and anchor_w[small] < anchor_w[large]
