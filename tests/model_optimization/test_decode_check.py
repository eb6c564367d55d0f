"""decoding_problem: near-ties in another runtime's decoding are accepted, converter bugs are not.

Hand-made scenes: each anchor is one box with softmax-like scores for (background, 1, 2, 3);
`expected` and `got` are what a decode layer would return (rows (class, conf, box), zero rows
after the last detection), written out so the reason for each verdict can be read off.
"""

import numpy as np
import pytest

from model_optimization.decode_check import decoding_problem

# Anchors (corners, pixels). A and B overlap with IoU 0.8; C overlaps B above the NMS threshold
# 0.45 (IoU 40 / 80 = 0.5) but not A (40 / 100 = 0.4); D and E are far from everything.
BOXES = np.array(
    [
        [0, 0, 10, 10],  # A
        [0, 0, 10, 8],  # B: inside A, IoU(A, B) = 80 / 100
        [0, 0, 5, 8],  # C: inside B
        [50, 50, 60, 60],  # D
        [80, 80, 90, 90],  # E
    ],
    "float32",
)
TIE = np.float32(0.6) + np.float32(6e-8)  # one float32 ulp above 0.6


def _scores(*rows):
    return np.array(rows, "float32")


def _out(rows, top_k=4):
    out = np.zeros((1, top_k, 6), "float32")
    for i, (class_id, conf, anchor) in enumerate(rows):
        out[0, i] = [class_id, conf, *BOXES[anchor]]
    return out


def _problem(expected, got, scores, per_class=True):
    return decoding_problem(
        expected, got, scores[None], BOXES[None], iou_threshold=0.45, per_class=per_class
    )


def test_the_scene_overlaps_are_what_the_cases_assume():
    from bounding_box_utils.bounding_box_utils import iou

    pairwise = iou(BOXES, BOXES, coords="corners", border_pixels="half")
    assert pairwise[0, 1] == pytest.approx(0.8)  # A-B: suppress each other
    assert pairwise[1, 2] == pytest.approx(0.5)  # B-C: B suppresses C
    assert pairwise[0, 2] == pytest.approx(0.4)  # A-C: A does not
    assert pairwise[3, 4] == 0


# Class scores per anchor: (background, class 1, class 2, class 3).
SCENE = _scores(
    [0.1, TIE, 0.2, 0.1],  # A: class 1, tied with B
    [0.1, 0.6, 0.2, 0.1],  # B: class 1
    [0.2, 0.5, 0.2, 0.1],  # C: class 1
    [0.1, 0.1, 0.4, 0.4],  # D: classes 2 and 3 tied
    [0.6, 0.1, 0.3, 0.0],  # E: class 2
)


def test_identical_outputs_agree():
    out = _out([(1, TIE, 0), (1, 0.5, 2), (2, 0.4, 3), (3, 0.4, 3)])
    assert _problem(out, out.copy(), SCENE) is None


def test_rows_of_tied_confidence_may_come_in_either_order():
    expected = _out([(1, TIE, 0), (1, 0.5, 2), (2, 0.4, 3), (3, 0.4, 3)])
    got = _out([(1, TIE, 0), (1, 0.5, 2), (3, 0.4, 3), (2, 0.4, 3)])
    assert _problem(expected, got, SCENE) is None


def test_nms_keeping_the_other_of_a_tied_pair_and_its_consequence_agree():
    # Keras keeps A (one ulp higher), which does not suppress C; the other runtime sees the
    # pair tied the other way, keeps B, and B suppresses C: A, C vs B, both explained.
    expected = _out([(1, TIE, 0), (1, 0.5, 2), (2, 0.4, 3), (3, 0.4, 3)])
    got = _out([(1, 0.6, 1), (2, 0.4, 3), (3, 0.4, 3)])
    assert _problem(expected, got, SCENE) is None
    assert _problem(got, expected, SCENE) is None


def test_the_last_place_may_go_to_either_of_two_tied_rows():
    scores = _scores(
        [0.1, 0.9, 0.0, 0.0],
        [0.1, 0.0, 0.0, 0.0],
        [0.1, 0.0, 0.0, 0.0],
        [0.1, 0.0, 0.3, 0.0],
        [0.1, 0.0, 0.0, np.float32(0.3) + np.float32(3e-8)],
    )
    expected = _out([(1, 0.9, 0), (2, 0.3, 3)], top_k=2)
    got = _out([(1, 0.9, 0), (3, scores[4, 3], 4)], top_k=2)
    assert _problem(expected, got, scores) is None
    # Not at the cut (the output is not full): the same difference is a real one.
    assert "in one output only" in _problem(_out([(1, 0.9, 0), (2, 0.3, 3)], top_k=3),
                                            _out([(1, 0.9, 0), (3, scores[4, 3], 4)], top_k=3),
                                            scores)  # fmt: skip


def test_an_argmax_tie_between_two_classes_agrees_only_for_the_fast_decoder():
    expected = _out([(2, 0.4, 3)])
    got = _out([(3, 0.4, 3)])
    assert _problem(expected, got, SCENE, per_class=False) is None
    # Per-class decoding has both classes as candidates: losing one is a difference.
    assert "in one output only" in _problem(expected, got, SCENE, per_class=True)


def test_a_wrong_class_id_on_a_clear_winner_is_caught():
    expected = _out([(2, 0.3, 4)])
    got = _out([(1, 0.3, 4)])  # anchor E scores class 1 at 0.1: not a candidate
    assert "not a candidate" in _problem(expected, got, SCENE)
    assert "not a candidate" in _problem(expected, got, SCENE, per_class=False)


def test_a_box_or_confidence_the_raw_predictions_do_not_give_is_caught():
    expected = _out([(2, 0.3, 4)])
    moved = expected.copy()
    moved[0, 0, 2:] += 2.0
    assert "not a candidate" in _problem(expected, moved, SCENE)
    rescored = expected.copy()
    rescored[0, 0, 1] = 0.35
    assert "not a candidate" in _problem(expected, rescored, SCENE)


def test_non_finite_values_and_wrong_shapes_are_caught():
    expected = _out([(2, 0.3, 4)])
    nan = expected.copy()
    nan[0, 1, 1] = np.nan
    assert "non-finite" in _problem(expected, nan, SCENE)
    assert "shape" in _problem(expected, expected[:, :2], SCENE)


def test_a_selection_no_tie_explains_is_caught():
    # B kept although A (clearly higher here) overlaps it: an NMS that does not suppress.
    scores = SCENE.copy()
    scores[0, 1] = 0.7
    expected = _out([(1, 0.7, 0), (1, 0.5, 2), (2, 0.4, 3)])
    got = _out([(1, 0.7, 0), (1, 0.6, 1), (1, 0.5, 2), (2, 0.4, 3)])
    assert "in one output only" in _problem(expected, got, scores)
    # A detection dropped (sort keys gone wrong): missing on one side, nothing tied to it.
    assert "in one output only" in _problem(expected, _out([(1, 0.7, 0), (2, 0.4, 3)]), scores)


def test_an_unsorted_output_is_caught():
    expected = _out([(1, TIE, 0), (1, 0.5, 2), (2, 0.4, 3)])
    got = _out([(1, 0.5, 2), (1, TIE, 0), (2, 0.4, 3)])
    assert "not sorted" in _problem(expected, got, SCENE)
