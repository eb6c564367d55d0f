"""Tests of the greedy bipartite and multi matchers: golden values, hand cases, references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bench import loop_references as reference
from ssd_encoder_decoder.matching_utils import (
    AnchorIoU,
    match_bipartite_greedy,
    match_bipartite_greedy_batch,
    match_bipartite_greedy_pairs,
    match_bipartite_greedy_rows,
    match_bipartite_greedy_sparse,
    match_multi,
    match_multi_pairs,
)


def test_golden_matching(golden):
    fixture = golden("box_utils")
    weights = fixture.npz["match_weight_matrix"]
    np.testing.assert_array_equal(
        match_bipartite_greedy(weights), fixture.npz["match_bipartite_greedy"]
    )
    gt, anchor = match_multi(weights, threshold=0.6)
    np.testing.assert_array_equal(gt, fixture.npz["match_multi_0.6_gt_indices"])
    np.testing.assert_array_equal(anchor, fixture.npz["match_multi_0.6_anchor_indices"])


def test_greedy_is_not_hungarian():
    # The global best pair (gt 0, anchor 0) = 0.9 is taken first, leaving gt 1 with anchor 1
    # (0.1): total 1.0. The Hungarian optimum would be gt 0 -> 1, gt 1 -> 0 (0.8 + 0.85 = 1.65).
    weights = np.array([[0.9, 0.8], [0.85, 0.1]])
    np.testing.assert_array_equal(match_bipartite_greedy(weights), [0, 1])


def test_ties_go_to_the_lowest_index():
    # Both ground truths reach 0.5 first at anchor 1: gt 0 wins (first row), gt 1 then takes
    # anchor 2 (its first remaining maximum).
    weights = np.array([[0.1, 0.5, 0.5, 0.0], [0.2, 0.5, 0.5, 0.5]])
    np.testing.assert_array_equal(match_bipartite_greedy(weights), [1, 2])
    gt, anchor = match_multi(weights, threshold=0.5)
    np.testing.assert_array_equal(gt, [0, 0, 1])
    np.testing.assert_array_equal(anchor, [1, 2, 3])


def test_zero_overlap_ground_truth_gets_a_free_anchor():
    # Fixed original quirk: gt 1 overlaps nothing; the original's zeroed matrix would hand it
    # anchor 0 (argmax of zeros) although gt 0 already took it. Here it gets the first free one.
    weights = np.array([[0.7, 0.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(match_bipartite_greedy(weights), [0, 1])
    np.testing.assert_array_equal(reference.match_bipartite_greedy(weights), [0, 0])


def test_empty_inputs():
    assert match_bipartite_greedy(np.zeros((0, 5))).shape == (0,)
    gt, anchor = match_multi(np.zeros((0, 5)), 0.5)
    assert gt.shape == anchor.shape == (0,)
    with pytest.raises(ValueError, match="weight_matrix"):
        match_bipartite_greedy(np.zeros(5))


weight_matrices = st.integers(1, 6).flatmap(
    lambda n_gt: st.integers(n_gt, 30).flatmap(
        lambda n_anchors: arrays(
            np.float64,
            (n_gt, n_anchors),
            # Few distinct values, so ties are common.
            elements=st.sampled_from([0.05, 0.1, 0.3, 0.5, 0.51, 0.7, 0.9]),
        )
    )
)


@settings(max_examples=60, deadline=None)
@given(weight_matrices)
def test_bipartite_equals_the_original_loop_and_is_distinct(weights):
    matches = match_bipartite_greedy(weights)
    np.testing.assert_array_equal(matches, reference.match_bipartite_greedy(weights))
    assert len(set(matches.tolist())) == len(matches)


@settings(max_examples=60, deadline=None)
@given(weight_matrices, st.sampled_from([0.1, 0.5, 0.51, 0.95]))
def test_multi_equals_a_plain_loop(weights, threshold):
    gt, anchor = match_multi(weights, threshold)
    expected_gt, expected_anchor = reference.match_multi_loop(weights, threshold)
    np.testing.assert_array_equal(gt, expected_gt)
    np.testing.assert_array_equal(anchor, expected_anchor)


def test_batch_and_rows_equal_one_matrix_at_a_time():
    rng = np.random.default_rng(0)
    weights = rng.random((4, 5, 40)).round(2)  # rounding creates ties
    valid = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], bool)
    batch = match_bipartite_greedy_batch(weights, valid)
    for b in range(4):
        k = int(valid[b].sum())
        np.testing.assert_array_equal(batch[b, :k], match_bipartite_greedy(weights[b, :k]))
        assert (batch[b, k:] == -1).all()
    # Rows of several images in one matrix, in any order.
    rows = np.concatenate([weights[1], weights[0, :3]])
    table = np.array([[5, 6, 7, -1, -1], [0, 1, 2, 3, 4]])
    matches = match_bipartite_greedy_rows(rows, table)
    np.testing.assert_array_equal(matches[5:], match_bipartite_greedy(weights[0, :3]))
    np.testing.assert_array_equal(matches[:5], match_bipartite_greedy(weights[1]))


def as_pairs(weights):
    """Every (row, anchor) pair of a dense matrix as the sparse matchers take them (1 image)."""
    rows, anchors = np.nonzero(np.ones(weights.shape, dtype=bool))
    return rows, anchors, weights[rows, anchors]


@settings(max_examples=40, deadline=None)
@given(weight_matrices, st.sampled_from([0.1, 0.5, 0.51]))
def test_pair_matchers_equal_the_dense_ones(weights, threshold):
    rows, keys, values = as_pairs(weights)
    n_gt, n_anchors = weights.shape
    match = np.full(n_gt, -1, dtype=np.int64)
    match_bipartite_greedy_pairs(
        rows, keys, values, np.zeros(n_gt, np.int64), match, set(), n_anchors
    )
    np.testing.assert_array_equal(match, match_bipartite_greedy(weights))
    gt, anchor = match_multi_pairs(rows, keys, values, threshold, exclude_keys=match)
    expected_gt, expected_anchor = match_multi(weights, threshold, exclude=match)
    np.testing.assert_array_equal(gt, expected_gt)
    np.testing.assert_array_equal(anchor, expected_anchor)


def test_match_multi_exclude_leaves_anchors_out():
    # Anchor 0's best is gt 0 (0.7) and anchor 2's is gt 1 (0.55); excluding anchor 0 leaves
    # only anchor 2 (the same rule the encoder applies after the bipartite step).
    weights = np.array([[0.7, 0.2, 0.5], [0.6, 0.4, 0.55]])
    gt, anchor = match_multi(weights, threshold=0.5, exclude=[0])
    np.testing.assert_array_equal(gt, [1])
    np.testing.assert_array_equal(anchor, [2])


def test_anchor_iou_keeps_its_old_import_path():
    from ssd_encoder_decoder.ssd_input_encoder import AnchorIoU as old_path

    assert old_path is AnchorIoU


def test_sparse_bipartite_equals_the_dense_greedy_per_image():
    # Anchors of a small two-layer grid (pixels, corners); 3 images of random boxes plus a
    # 1x1 box, whose best IoU (1/144 with the 12x12 anchors) is below t / 64, so every stage
    # runs: the pairs >= t, the lowered thresholds and the dense rows.
    from ssd_encoder_decoder.ssd_input_encoder import SSDInputEncoder

    encoder = SSDInputEncoder(
        60, 80, 3, [[6, 8], [3, 4]], scales=[0.2, 0.5, 0.9], coords="corners",
        normalize_coords=False,
    )  # fmt: skip
    anchor_iou = AnchorIoU(encoder.anchors, "half", encoder._grid_shapes)
    rng = np.random.default_rng(4)
    lo = rng.uniform(0, 50, size=(12, 2))
    boxes = np.concatenate([lo, lo + rng.uniform(2, 30, size=(12, 2))], axis=1)
    boxes[5] = [30, 30, 31, 31]
    image_of_row = np.repeat(np.arange(3), 4)
    for threshold in (0.5, 0.3):
        pairs = anchor_iou.pairs_at_least(boxes, threshold)
        match = match_bipartite_greedy_sparse(boxes, image_of_row, anchor_iou, pairs, threshold)
        for image in range(3):
            rows = image_of_row == image
            expected = match_bipartite_greedy(anchor_iou(boxes[rows]))
            np.testing.assert_array_equal(match[rows], expected)
