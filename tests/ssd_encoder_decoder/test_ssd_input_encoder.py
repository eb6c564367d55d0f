"""Tests of SSDInputEncoder: golden parity, a reference loop, hand cases, round trips."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import loop_references as reference
from bounding_box_utils import convert_coordinates, iou
from ssd_encoder_decoder.ssd_input_encoder import AnchorIoU, DegenerateBoxError, SSDInputEncoder
from ssd_encoder_decoder.ssd_output_decoder import decode_detections

ENCODER_FIXTURES = ["encoder_ssd300", "encoder_ssd7", "encoder_ssd300_bipartite"]

SSD300_KWARGS = {
    "img_height": 300,
    "img_width": 300,
    "n_classes": 20,
    "predictor_sizes": [[38, 38], [19, 19], [10, 10], [5, 5], [3, 3], [1, 1]],
    "scales": [0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05],
    "aspect_ratios_per_layer": [[1.0, 2.0, 0.5]]
    + [[1.0, 2.0, 0.5, 3.0, 1.0 / 3.0]] * 3
    + [[1.0, 2.0, 0.5]] * 2,
    "steps": [8, 16, 32, 64, 100, 300],
    "offsets": [0.5] * 6,
    "variances": [0.1, 0.1, 0.2, 0.2],
    "neg_iou_limit": 0.5,
}
# A small model (few anchors) for the reference-loop and round-trip tests.
SMALL_KWARGS = {
    "img_height": 120,
    "img_width": 160,
    "n_classes": 4,
    "predictor_sizes": [[12, 16], [6, 8], [3, 4]],
    "scales": [0.1, 0.25, 0.5, 0.8],
    "aspect_ratios_global": [0.5, 1.0, 2.0],
    "variances": [0.1, 0.1, 0.2, 0.2],
    "neg_iou_limit": 0.3,
}


def fixture_labels(fixture):
    return [fixture.npz[f"labels_{i}"] for i in range(fixture.meta["batch_size"])]


def random_labels(rng, n_images, img_h, img_w, n_classes, max_boxes=6):
    labels = []
    for _ in range(n_images):
        k = int(rng.integers(0, max_boxes + 1))
        w = rng.integers(4, img_w // 2, k)
        h = rng.integers(4, img_h // 2, k)
        x = rng.integers(0, img_w - w)
        y = rng.integers(0, img_h - h)
        cls = rng.integers(1, n_classes + 1, k)
        labels.append(np.stack([cls, x, y, x + w, y + h], axis=1).astype(np.float32))
    return labels


@pytest.mark.parametrize("name", ENCODER_FIXTURES)
def test_golden_encoder(golden, name):
    fixture = golden(name)
    encoder = SSDInputEncoder(**fixture.meta["encoder_kwargs"])
    y = encoder(fixture_labels(fixture))
    expected = fixture.npz["y_encoded"]
    assert y.shape == expected.shape == tuple(fixture.meta["y_encoded_shape"])
    n = encoder.n_classes
    np.testing.assert_array_equal(y[..., :n], expected[..., :n])  # class columns exact
    np.testing.assert_allclose(y[..., n:], expected[..., n:], rtol=1e-4, atol=1e-4)
    for i, item in enumerate(fixture.meta["items"]):
        positives = np.nonzero(y[i, :, 1:n].any(axis=-1))[0]
        np.testing.assert_array_equal(positives, item["positive_anchor_indices"])
        np.testing.assert_array_equal(
            np.argmax(y[i, positives, :n], axis=-1), item["positive_anchor_classes"]
        )
        neutral = np.nonzero(~y[i, :, :n].any(axis=-1))[0]
        np.testing.assert_array_equal(neutral, item["neutral_anchor_indices"])


def test_golden_tie_is_resolved_like_the_original(golden):
    # encoder_ssd300 item 1: a 6x6 box with 30 anchors at IoU 0.04 up to float64 rounding; the
    # original's float64 argmax picks anchor 1903, and so do we (same operations, same order).
    fixture = golden("encoder_ssd300")
    encoder = SSDInputEncoder(**fixture.meta["encoder_kwargs"])
    y = encoder([fixture.npz["labels_1"]])
    positives = np.nonzero(y[0, :, 1:21].any(axis=-1))[0]
    np.testing.assert_array_equal(positives, [1903])
    assert np.argmax(y[0, 1903, :21]) == 5


@pytest.mark.parametrize("name", ENCODER_FIXTURES)
def test_golden_degenerate_box_raises(golden, name):
    fixture = golden(name)
    encoder = SSDInputEncoder(**fixture.meta["encoder_kwargs"])
    for case in fixture.meta["error_cases"]:
        labels = [np.array(x, dtype=np.float32).reshape(-1, 5) for x in case["ground_truth_labels"]]
        with pytest.raises(DegenerateBoxError, match=r"ground_truth_labels\[0\] box 0"):
            encoder(labels)


def test_degenerate_error_names_image_box_and_values():
    encoder = SSDInputEncoder(**SMALL_KWARGS)
    good = np.array([[1, 10, 10, 50, 40]])
    bad = np.array([[1, 10, 10, 50, 40], [2, 30, 20, 30, 60]])  # zero width
    with pytest.raises(DegenerateBoxError, match=r"ground_truth_labels\[1\] box 1.*'xmin': 30"):
        encoder([good, bad])
    with pytest.raises(ValueError, match="class_id 9"):
        encoder([np.array([[9, 10, 10, 50, 40]])])
    with pytest.raises(ValueError, match="shape"):
        encoder([np.array([[1, 10, 10, 50]])])
    with pytest.raises(ValueError, match="non-finite"):
        encoder([np.array([[1, 10, np.nan, 50, 40]])])


def test_equals_the_reference_loop_on_random_batches():
    rng = np.random.default_rng(7)
    for matching_type in ("multi", "bipartite"):
        for coords in ("centroids", "corners", "minmax"):
            encoder = SSDInputEncoder(**SMALL_KWARGS, matching_type=matching_type, coords=coords)
            labels = random_labels(rng, 6, 120, 160, 4)
            np.testing.assert_array_equal(encoder(labels), reference.encode(encoder, labels))


def test_anchor_iou_is_bitwise_bounding_box_utils_iou():
    rng = np.random.default_rng(3)
    encoder = SSDInputEncoder(**SSD300_KWARGS)
    anchors = convert_coordinates(encoder.anchors, 0, "centroids2corners")
    boxes = rng.random((25, 4))
    boxes[:, [0, 2]] = np.sort(boxes[:, [0, 2]], axis=1)
    boxes[:, [1, 3]] = np.sort(boxes[:, [1, 3]], axis=1)
    for border_pixels in ("half", "include", "exclude"):
        scaled = anchors * 300 if border_pixels != "half" else anchors
        queries = boxes * 300 if border_pixels != "half" else boxes
        expected = iou(queries, scaled, coords="corners", border_pixels=border_pixels)
        got = AnchorIoU(scaled, border_pixels)(queries)
        np.testing.assert_array_equal(got, expected)
        # Grid mode (what the encoder uses): per-layer broadcasting, only overlapped rectangles.
        grid = AnchorIoU(scaled, border_pixels, encoder._grid_shapes)
        assert grid.grid is not None
        np.testing.assert_array_equal(grid(queries), expected)
        small = queries[:1] * 0.1  # a box in one corner: most layer rows/columns untouched
        np.testing.assert_array_equal(
            grid(small), iou(small, scaled, coords="corners", border_pixels=border_pixels)
        )


def _encode_dense(encoder, labels):
    """The encoder with its dense per-image matching (the path for any anchor set)."""
    encoder._sparse_matching_applies = lambda corners, anchor_iou: False
    try:
        return encoder(labels)
    finally:
        del encoder._sparse_matching_applies


def _bench_like_labels(rng, n_images, img_h, img_w, n_classes, grid=None):
    """1-7 boxes of any aspect ratio (10 px to ~5/6 of the image); ``grid`` snaps the corners
    to multiples of ``grid`` pixels, which makes many exactly equal IoUs (ties)."""
    labels = []
    for _ in range(n_images):
        k = int(rng.integers(1, 8))
        w = rng.integers(10, img_w * 5 // 6, k)
        h = rng.integers(10, img_h * 5 // 6, k)
        x = rng.integers(0, img_w - w)
        y = rng.integers(0, img_h - h)
        boxes = np.stack([x, y, x + w, y + h], axis=1).astype(np.float64)
        if grid:
            boxes = np.round(boxes / grid) * grid
            boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + grid)
        cls = rng.integers(1, n_classes + 1, k)
        labels.append(np.concatenate([cls[:, None], boxes], axis=1))
    return labels


@pytest.mark.parametrize("coords", ["centroids", "corners", "minmax"])
@pytest.mark.parametrize("border_pixels", ["half", "include", "exclude"])
def test_sparse_matching_equals_dense_matching(coords, border_pixels):
    """The encoder's matching from the pairs with IoU >= t equals the dense per-image matching
    (itself checked against the original's loop), ties included."""
    rng = np.random.default_rng(11)
    for matching_type in ("multi", "bipartite"):
        for pos, neg in ((0.5, 0.5), (0.5, 0.3), (0.4, 0.7), (0.9, 0.9)):
            encoder = SSDInputEncoder(
                **dict(SSD300_KWARGS, neg_iou_limit=neg),
                pos_iou_threshold=pos,
                matching_type=matching_type,
                coords=coords,
                border_pixels=border_pixels,
            )
            for grid in (None, 30):
                labels = _bench_like_labels(rng, 3, 300, 300, 20, grid=grid)
                np.testing.assert_array_equal(encoder(labels), _encode_dense(encoder, labels))


@pytest.mark.parametrize("clip_boxes", [False, True])
@pytest.mark.parametrize("normalize_coords", [False, True])
def test_sparse_matching_equals_dense_matching_small_model(clip_boxes, normalize_coords):
    """Clipped anchors (widths vary along the grid) and pixel coordinates take the same path."""
    rng = np.random.default_rng(12)
    for border_pixels in ("half", "include", "exclude"):
        for matching_type in ("multi", "bipartite"):
            encoder = SSDInputEncoder(
                **SMALL_KWARGS,
                clip_boxes=clip_boxes,
                normalize_coords=normalize_coords,
                border_pixels=border_pixels,
                matching_type=matching_type,
            )
            for grid in (None, 10):
                labels = _bench_like_labels(rng, 4, 120, 160, 4, grid=grid)
                y = encoder(labels)
                np.testing.assert_array_equal(y, _encode_dense(encoder, labels))
                if border_pixels == "half":  # the reference loop knows only 'half'
                    np.testing.assert_array_equal(y, reference.encode(encoder, labels))


def test_sparse_matching_reaches_every_fallback():
    # A 2 x 2 px box has IoU 4/900 < 0.9/64 with every SSD300 anchor (the smallest is 30 x 30
    # px), so its bipartite match comes from the last, dense step; the 100 x 100 px box is
    # matched in the first walk and a 30 x 300 px strip in one of the lower-threshold walks.
    encoder = SSDInputEncoder(**SSD300_KWARGS, pos_iou_threshold=0.9)
    labels = [
        np.array([[1, 100, 100, 200, 200], [2, 10, 10, 12, 12], [3, 0, 135, 300, 165.0]]),
        np.array([[4, 149, 149, 151, 151.0]]),
    ]
    calls = []  # (number of boxes, threshold) of each pair search
    anchor_iou = encoder._anchor_iou
    original_pairs = anchor_iou.pairs_at_least
    anchor_iou.pairs_at_least = lambda b, t: calls.append((len(b), t)) or original_pairs(b, t)
    try:
        y = encoder(labels)
    finally:
        del anchor_iou.pairs_at_least
    assert [t for _, t in calls] == [0.5] + [0.5 / 2**i for i in range(1, 7)]
    assert calls[0][0] == 4 and 2 < calls[1][0] < 4  # the strip and the tiny boxes go on
    assert calls[-1][0] == 2  # only the two tiny boxes reach the dense step
    np.testing.assert_array_equal(y, _encode_dense(encoder, labels))
    np.testing.assert_array_equal(y, reference.encode(encoder, labels))


def test_pairs_at_least_are_exactly_the_dense_iou_pairs():
    rng = np.random.default_rng(5)
    encoder = SSDInputEncoder(**SSD300_KWARGS)
    anchors = convert_coordinates(encoder.anchors, 0, "centroids2corners")
    for border_pixels in ("half", "include", "exclude"):
        scale = 1.0 if border_pixels == "half" else 300.0
        anchor_iou = AnchorIoU(anchors * scale, border_pixels, encoder._grid_shapes)
        boxes = np.sort(rng.random((40, 2, 2)), axis=1).reshape(40, 4) * scale  # corners
        boxes[:, 2:] += 2 * scale / 300  # at least 2 px wide and high
        dense = anchor_iou(boxes)
        for threshold in (0.7, 0.5, 0.3, 0.05, 1e-3):
            rows, anchors_found, values = anchor_iou.pairs_at_least(boxes, threshold)
            expected_rows, expected_anchors = np.nonzero(dense >= threshold)
            order = np.lexsort((anchors_found, rows))
            np.testing.assert_array_equal(rows[order], expected_rows)
            np.testing.assert_array_equal(anchors_found[order], expected_anchors)
            np.testing.assert_array_equal(values[order], dense[expected_rows, expected_anchors])
    with pytest.raises(ValueError, match="positive"):
        anchor_iou.pairs_at_least(boxes, 0.0)


def test_float32_output_is_the_float64_output_rounded(golden):
    fixture = golden("encoder_ssd300")
    labels = fixture_labels(fixture)
    rng = np.random.default_rng(2)
    for coords in ("centroids", "minmax"):
        y64 = SSDInputEncoder(**SSD300_KWARGS, coords=coords)(labels)
        y32 = SSDInputEncoder(**SSD300_KWARGS, coords=coords, output_dtype="float32")(labels)
        assert y32.dtype == np.float32 and y64.dtype == np.float64
        np.testing.assert_array_equal(y32, y64.astype(np.float32))
        more = _bench_like_labels(rng, 4, 300, 300, 20)
        encoder32 = SSDInputEncoder(**SSD300_KWARGS, coords=coords, output_dtype=np.float32)
        y32, matched32 = encoder32(more, diagnostics=True)
        y64, matched64 = SSDInputEncoder(**SSD300_KWARGS, coords=coords)(more, diagnostics=True)
        np.testing.assert_array_equal(y32, y64.astype(np.float32))
        np.testing.assert_array_equal(matched32, matched64.astype(np.float32))
    for bad in ("int32", "not-a-type", bool):
        with pytest.raises(ValueError, match="output_dtype"):
            SSDInputEncoder(**SSD300_KWARGS, output_dtype=bad)


def test_empty_batch_items_are_all_background():
    encoder = SSDInputEncoder(**SMALL_KWARGS)
    y = encoder([np.zeros((0, 5)), np.array([[2, 10, 10, 60, 50]])])
    assert y.shape == (2, encoder.n_anchors, 5 + 12)
    assert (y[0, :, 0] == 1).all() and (y[0, :, 1:5] == 0).all() and (y[0, :, 5:9] == 0).all()
    assert y[1, :, 2].sum() >= 1  # the box got at least its bipartite anchor
    assert encoder([]).shape == (0, encoder.n_anchors, 17)


def test_template_and_diagnostics(golden):
    fixture = golden("anchors")
    encoder = SSDInputEncoder(**SSD300_KWARGS)
    template = encoder.generate_encoding_template(2)
    assert template.shape == (2, 8732, 33)
    assert (template[..., :21] == 0).all()
    np.testing.assert_allclose(template[0, :, 21:25], fixture.npz["ssd300_anchors"], atol=1e-6)
    np.testing.assert_allclose(template[1, :, 25:29], fixture.npz["ssd300_anchors"], atol=1e-6)
    np.testing.assert_allclose(template[0, :, 29:], fixture.npz["ssd300_variances"], atol=1e-6)
    _, centers, wh, steps, offsets = encoder.generate_encoding_template(1, diagnostics=True)
    assert steps[0] == (8.0, 8.0) and offsets[0] == (0.5, 0.5)
    np.testing.assert_allclose(centers[0][0][:2], [4.0, 12.0])  # cy of the first two rows
    np.testing.assert_allclose(wh[0][0], [0.1, 0.1])  # 30 px / 300 px

    y, matched = encoder([np.array([[3, 50, 60, 150, 200]])], diagnostics=True)
    assert (matched[..., 21:25] == 0).all()
    np.testing.assert_array_equal(matched[..., :21], y[..., :21])


def test_border_pixels_is_applied_in_pixels():
    # Fixed original bug: 'include' must add one pixel (1/300 here), not 1.0 normalised unit.
    labels = [np.array([[1, 100, 100, 159, 179]])]  # 60 x 80 pixels with 'include'
    for border_pixels, expected_w, expected_h in (("include", 60, 80), ("exclude", 58, 78)):
        encoder = SSDInputEncoder(**SSD300_KWARGS, border_pixels=border_pixels)
        y = encoder(labels)
        assert np.isfinite(y).all()
        pos = np.nonzero(y[0, :, 1])[0]
        assert len(pos) >= 1
        row = y[0, pos[0]]
        width = np.exp(row[23] * row[31]) * row[27] * 300
        height = np.exp(row[24] * row[32]) * row[28] * 300
        np.testing.assert_allclose([width, height], [expected_w, expected_h], rtol=1e-9)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["centroids", "corners", "minmax"]))
def test_decoding_perfect_predictions_gives_back_the_ground_truth(seed, coords):
    """decode(encode(labels)) == labels when the model predicts the targets exactly."""
    rng = np.random.default_rng(seed)
    encoder = SSDInputEncoder(**SMALL_KWARGS, coords=coords)
    # Distinct classes per image so that NMS never merges two ground truths.
    labels = []
    for _ in range(3):
        k = int(rng.integers(1, 5))
        w = rng.integers(8, 80, k)
        h = rng.integers(8, 60, k)
        x = rng.integers(0, 160 - w)
        y = rng.integers(0, 120 - h)
        cls = rng.permutation(4)[:k] + 1
        labels.append(np.stack([cls, x, y, x + w, y + h], axis=1).astype(np.float64))
    y_true = encoder(labels)
    y_pred = y_true.copy()
    neutral = ~y_pred[..., :5].any(axis=-1)
    y_pred[neutral, 0] = 1.0  # neutral anchors predict background
    detections = decode_detections(
        y_pred, confidence_thresh=0.5, iou_threshold=0.45, top_k="all",
        input_coords=coords, img_height=120, img_width=160,
    )  # fmt: skip
    for decoded, expected in zip(detections, labels):
        expected = expected[np.argsort(expected[:, 0])]
        decoded = decoded[np.argsort(decoded[:, 0])]
        assert decoded.shape == (len(expected), 6)
        np.testing.assert_array_equal(decoded[:, 0], expected[:, 0])
        np.testing.assert_allclose(decoded[:, 2:], expected[:, 1:], atol=1e-9)


def test_numpy_package_does_not_import_keras(imports_leave_out):
    imports_leave_out(
        [
            "ssd_encoder_decoder.ssd_input_encoder",
            "ssd_encoder_decoder.ssd_output_decoder",
            "ssd_encoder_decoder.matching_utils",
        ]
    )
