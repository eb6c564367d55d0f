"""Pure VOC functions: hand-made curves, small known cases, the original's bugs, a brute-force
reference for matching, and input checks."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import loop_references as reference
from eval_utils.average_precision_evaluator import (
    Evaluator,
    average_precision,
    count_ground_truth,
    evaluate_predictions,
    flatten_ground_truth,
    match_detection_arrays,
    match_predictions,
    mean_average_precision,
    precision_recall,
    prediction_results_from_detections,
)

# ---------------------------------------------------------------------------------------------
# average_precision on hand-made curves
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sample", "integrate"])
def test_perfect_detector_single_object_scores_one(mode):
    # One object, one correct detection: precision 1 at recall 1. The original's "integrate"
    # mode returned 0.0 here (bug 17: it dropped the area before the first recall point).
    assert average_precision(np.array([1.0]), np.array([1.0]), mode=mode) == 1.0


@pytest.mark.parametrize("mode", ["sample", "integrate"])
def test_perfect_detector_many_objects_scores_one(mode):
    # Five objects found in order, then two false positives with lower confidence: the FPs come
    # after recall 1 is reached, so they cannot lower the AP.
    tp = np.array([1, 1, 1, 1, 1, 0, 0])
    fp = 1 - tp
    p, r = precision_recall(np.cumsum(tp), np.cumsum(fp), num_gt=5)
    assert average_precision(p, r, mode=mode) == 1.0


@pytest.mark.parametrize("mode", ["sample", "integrate"])
def test_no_predictions_scores_zero(mode):
    assert average_precision(np.zeros(0), np.zeros(0), mode=mode) == 0.0


def test_half_recall_at_full_precision():
    # Two objects, one found by the only detection: precision 1 up to recall 0.5.
    # 11-point: thresholds 0, 0.1, ..., 0.5 (6 of 11) see precision 1 -> 6/11.
    # all-point: the area is 0.5 * 1.0 = 0.5.
    p, r = np.array([1.0]), np.array([0.5])
    assert average_precision(p, r, "sample") == pytest.approx(6 / 11, abs=1e-15)
    assert average_precision(p, r, "integrate") == pytest.approx(0.5, abs=1e-15)


def test_false_positive_first_then_true_positive():
    # FP at 0.9, then the only object at 0.8: precision [0, 0.5], recall [0, 1].
    # The envelope is 0.5 over all recalls: 11-point AP = 0.5, all-point AP = 0.5.
    p, r = precision_recall(np.array([0, 1]), np.array([1, 1]), num_gt=1)
    np.testing.assert_array_equal(p, [0.0, 0.5])
    np.testing.assert_array_equal(r, [0.0, 1.0])
    assert average_precision(p, r, "sample") == pytest.approx(0.5, abs=1e-15)
    assert average_precision(p, r, "integrate") == pytest.approx(0.5, abs=1e-15)


def test_envelope_raises_earlier_precision():
    # TP, FP, TP for 2 objects: precision [1, 1/2, 2/3], recall [1/2, 1/2, 1].
    # all-point: 0.5 * 1 + 0.5 * 2/3 = 5/6. 11-point: t <= 0.5 (6 points) -> 1, the other 5 ->
    # 2/3: (6 + 10/3) / 11 = 28/33.
    p, r = precision_recall(np.array([1, 1, 2]), np.array([0, 1, 1]), num_gt=2)
    assert average_precision(p, r, "integrate") == pytest.approx(5 / 6, abs=1e-15)
    assert average_precision(p, r, "sample") == pytest.approx(28 / 33, abs=1e-15)


def test_sample_mode_with_many_points_approaches_integrate():
    rng = np.random.default_rng(3)
    tp = (rng.random(200) < 0.6).astype(int)
    p, r = precision_recall(np.cumsum(tp), np.cumsum(1 - tp), num_gt=150)
    exact = average_precision(p, r, "integrate")
    assert average_precision(p, r, "sample", num_recall_points=100_001) == pytest.approx(
        exact, abs=1e-4
    )


def test_precision_is_zero_before_anything_counts():
    # A detection matching a difficult box counts as neither TP nor FP.
    p, r = precision_recall(np.array([0, 1]), np.array([0, 0]), num_gt=1)
    np.testing.assert_array_equal(p, [0.0, 1.0])
    assert average_precision(p, r, "integrate") == 1.0


def test_class_without_ground_truth_has_nan_recall_and_ap():
    p, r = precision_recall(np.array([0, 0]), np.array([1, 2]), num_gt=0)
    assert np.all(np.isnan(r))
    assert np.isnan(average_precision(p, r, "sample"))


def test_mean_average_precision_excludes_classes_without_ground_truth_with_a_warning():
    aps = [0.0, 0.5, float("nan"), 1.0]
    with pytest.warns(UserWarning, match=r"classes \[2\]"):
        assert mean_average_precision(aps, [0, 3, 0, 2]) == 0.75
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mean_average_precision([0.0, 0.5, 1.0], [0, 1, 1]) == 0.75


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "area"}, "mode must be one of"),
        ({"mode": "sample", "num_recall_points": 0}, "num_recall_points"),
    ],
)
def test_average_precision_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        average_precision(np.array([1.0]), np.array([1.0]), **kwargs)


# ---------------------------------------------------------------------------------------------
# matching: small known cases
# ---------------------------------------------------------------------------------------------


def test_border_pixels_include_uses_the_plus_one_rule_in_the_intersection():
    # GT [0, 0, 9, 9] is 10 x 10 pixels with "include"; the detection [0, 0, 9, 4] is 10 x 5 and
    # lies inside it: IoU = 50 / 100 = 0.5 -> TP. With "half" (9 x 9 and 9 x 4) it is
    # 36 / 81 = 0.444 -> FP. The original left the +1 out of the intersection only (bug 1):
    # 36 / (100 + 50 - 36) = 0.316 -> FP.
    labels = [np.array([[1, 0, 0, 9, 9]])]
    preds = [[], [("img", 0.9, 0, 0, 9, 4)]]
    include = match_predictions(preds, labels, ["img"], 1, border_pixels="include")
    half = match_predictions(preds, labels, ["img"], 1, border_pixels="half")
    assert include.true_positives[1].tolist() == [1]
    assert half.true_positives[1].tolist() == [0]
    assert half.false_positives[1].tolist() == [1]


def test_difficult_boxes_are_ignored_and_not_counted():
    # Image with a normal and a difficult box of class 1. Detections: the difficult box twice
    # (both ignored, even the duplicate), then the normal box (TP).
    labels = [np.array([[1, 0, 0, 10, 10], [1, 50, 50, 60, 60]])]
    neutral = [[False, True]]
    preds = [[], [("a", 0.9, 50, 50, 60, 60), ("a", 0.8, 50, 50, 60, 60), ("a", 0.7, 0, 0, 10, 10)]]
    m = match_predictions(preds, labels, ["a"], 1, eval_neutral=neutral, border_pixels="half")
    assert m.true_positives[1].tolist() == [0, 0, 1]
    assert m.false_positives[1].tolist() == [0, 0, 0]
    assert count_ground_truth(labels, 1, neutral).tolist() == [0, 1]
    # Without ignoring neutral boxes the difficult box is an ordinary object.
    m = match_predictions(
        preds,
        labels,
        ["a"],
        1,
        eval_neutral=neutral,
        ignore_neutral_boxes=False,
        border_pixels="half",
    )
    assert m.true_positives[1].tolist() == [1, 0, 1]
    assert m.false_positives[1].tolist() == [0, 1, 0]
    assert count_ground_truth(labels, 1, neutral, ignore_neutral_boxes=False).tolist() == [0, 2]


def test_detection_takes_its_best_box_even_when_taken():
    # VOC rule: a detection takes the box of highest IoU; if that one is already taken it is a
    # duplicate (FP) even though another free box overlaps it enough.
    # GT A = [0, 0, 10, 10], GT B = [2, 0, 12, 10]. Detection 1 = A exactly (TP for A).
    # Detection 2 = [1, 0, 11, 10]: IoU 9/11 with both A and B; ties go to the first box, A,
    # which is taken -> FP (a "best free box" matcher such as COCO's would give B a TP).
    labels = [np.array([[1, 0, 0, 10, 10], [1, 2, 0, 12, 10]])]
    preds = [[], [("a", 0.9, 0, 0, 10, 10), ("a", 0.8, 1, 0, 11, 10)]]
    m = match_predictions(preds, labels, ["a"], 1, border_pixels="half")
    assert m.true_positives[1].tolist() == [1, 0]
    assert m.false_positives[1].tolist() == [0, 1]


def test_other_class_and_other_image_are_false_positives():
    labels = [np.array([[1, 0, 0, 10, 10]]), np.array([[2, 0, 0, 10, 10]])]
    # class-2 detection on image a (only class 1 there); class-1 detection on image b.
    preds = [[], [("b", 0.9, 0, 0, 10, 10)], [("a", 0.9, 0, 0, 10, 10)]]
    m = match_predictions(preds, labels, ["a", "b"], 2)
    assert m.false_positives[1].tolist() == [1]
    assert m.false_positives[2].tolist() == [1]


def test_iou_exactly_at_threshold_matches():
    # Detection [60, 60, 100, 80] on GT [60, 60, 100, 100], "half": IoU 800 / 1600 = 0.5 exactly.
    labels = [np.array([[1, 60, 60, 100, 100]])]
    preds = [[], [("a", 0.4, 60, 60, 100, 80)]]
    assert match_predictions(preds, labels, ["a"], 1, border_pixels="half").true_positives[
        1
    ].tolist() == [1]


def test_predictions_are_sorted_by_confidence_and_order_maps_back():
    labels = [np.array([[1, 0, 0, 10, 10]])]
    preds = [[], [("a", 0.2, 0, 0, 10, 10), ("a", 0.9, 0, 0, 10, 10), ("a", 0.5, 30, 30, 40, 40)]]
    m = match_predictions(preds, labels, ["a"], 1)
    assert m.order[1].tolist() == [1, 2, 0]
    np.testing.assert_array_equal(m.confidences[1], [0.9, 0.5, 0.2])
    assert m.true_positives[1].tolist() == [1, 0, 0]
    assert m.false_positives[1].tolist() == [0, 1, 1]


def test_integer_image_ids_and_string_ids_match_by_str():
    # The original keyed ground truth by str(image_id); ids from a DataGenerator may be ints.
    labels = [np.array([[1, 0, 0, 10, 10]])]
    m = match_predictions([[], [("7", 0.9, 0, 0, 10, 10)]], labels, [7], 1)
    assert m.true_positives[1].tolist() == [1]


def test_long_image_ids_are_not_truncated():
    # The original stored ids in a 'U<len(first id) + 6>' array, silently cutting longer ones.
    ids = ["a", "a_much_longer_image_id"]
    labels = [np.zeros((0, 5)), np.array([[1, 0, 0, 10, 10]])]
    preds = [[], [("a", 0.1, 50, 50, 60, 60), ("a_much_longer_image_id", 0.9, 0, 0, 10, 10)]]
    assert match_predictions(preds, labels, ids, 1).true_positives[1].tolist() == [1, 0]


# ---------------------------------------------------------------------------------------------
# The original's evaluator bugs, through the Evaluator's step methods
# ---------------------------------------------------------------------------------------------


class _Dataset:
    """Just the attributes of a DataGenerator that the evaluation steps read."""

    def __init__(self, labels, image_ids, eval_neutral=None):
        self.labels = labels
        self.image_ids = image_ids
        self.eval_neutral = eval_neutral


def _run_steps(evaluator, mode="sample", verbose=False):
    evaluator.get_num_gt_per_class(verbose=verbose)
    evaluator.match_predictions(verbose=verbose, border_pixels="half")
    evaluator.compute_precision_recall(verbose=verbose)
    evaluator.compute_average_precisions(mode=mode, verbose=verbose)
    return evaluator.compute_mean_average_precision()


def test_bug15_verbose_false_matches_every_prediction():
    # Three objects, three correct detections. The original, with verbose=False, looped over
    # range(len(predictions.shape)) == range(1): TP [1, 0, 0] and AP 1/3 (11-point 4/11).
    labels = [np.array([[1, 0, 0, 10, 10], [1, 20, 20, 30, 30], [1, 40, 40, 50, 50]])]
    evaluator = Evaluator(model=None, n_classes=1, data_generator=_Dataset(labels, ["a"]))
    evaluator.prediction_results = [
        [],
        [("a", 0.9, 0, 0, 10, 10), ("a", 0.8, 20, 20, 30, 30), ("a", 0.7, 40, 40, 50, 50)],
    ]
    assert _run_steps(evaluator, verbose=False) == 1.0
    assert evaluator.true_positives[1].tolist() == [1, 1, 1]


def test_bug16_class_without_predictions_does_not_shift_later_classes(capsys):
    # Class 1 has an object but no prediction; class 2 is detected perfectly. The original
    # appended no cumulative arrays for class 1, so class 2's landed at index 1 and
    # compute_precision_recall raised IndexError for class 2.
    labels = [np.array([[1, 0, 0, 10, 10], [2, 20, 20, 30, 30]])]
    evaluator = Evaluator(model=None, n_classes=2, data_generator=_Dataset(labels, ["a"]))
    evaluator.prediction_results = [[], [], [("a", 0.9, 20, 20, 30, 30)]]
    for mode in ("sample", "integrate"):
        mean_ap = _run_steps(evaluator, mode=mode, verbose=True)
        assert evaluator.average_precisions == [0.0, 0.0, 1.0]
        assert mean_ap == 0.5
    assert "No predictions for class 1/2" in capsys.readouterr().out
    assert evaluator.cumulative_true_positives[1].shape == (0,)


def test_bug17_integrate_mode_counts_the_area_from_recall_zero():
    labels = [np.array([[1, 0, 0, 10, 10]])]
    evaluator = Evaluator(model=None, n_classes=1, data_generator=_Dataset(labels, ["a"]))
    evaluator.prediction_results = [[], [("a", 0.9, 0, 0, 10, 10)]]
    # The original's "integrate" gave 0.0 for this perfect detection.
    assert _run_steps(evaluator, mode="integrate") == 1.0


def test_evaluator_reports_class_without_ground_truth_and_excludes_it():
    labels = [np.array([[1, 0, 0, 10, 10]])]
    evaluator = Evaluator(model=None, n_classes=2, data_generator=_Dataset(labels, ["a"]))
    evaluator.prediction_results = [[], [("a", 0.9, 0, 0, 10, 10)], [("a", 0.8, 0, 0, 10, 10)]]
    with pytest.warns(UserWarning, match=r"classes \[2\] have no ground-truth"):
        assert _run_steps(evaluator) == 1.0
    assert np.isnan(evaluator.average_precisions[2])
    assert evaluator.false_positives[2].tolist() == [1]


def test_evaluator_steps_need_their_inputs():
    evaluator = Evaluator(
        model=None, n_classes=1, data_generator=_Dataset([np.zeros((0, 5))], ["a"])
    )
    with pytest.raises(ValueError, match="predict_on_dataset"):
        evaluator.match_predictions()
    with pytest.raises(ValueError, match="match_predictions"):
        evaluator.compute_precision_recall()
    with pytest.raises(ValueError, match="compute_precision_recall"):
        evaluator.compute_average_precisions()
    with pytest.raises(ValueError, match="compute_average_precisions"):
        evaluator.compute_mean_average_precision()
    with pytest.raises(ValueError, match="model_mode"):
        Evaluator(model=None, n_classes=1, data_generator=_Dataset([], []), model_mode="eval")
    with pytest.raises(ValueError, match="no ground truth"):
        Evaluator(
            model=None, n_classes=1, data_generator=_Dataset(None, None)
        ).get_num_gt_per_class()


# ---------------------------------------------------------------------------------------------
# Brute-force reference: the VOCevaldet loop, one detection at a time
# ---------------------------------------------------------------------------------------------


_box = st.tuples(
    st.integers(0, 30), st.integers(0, 30), st.integers(1, 25), st.integers(1, 25)
).map(lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    gts=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3), _box, st.booleans()), max_size=20),
    dets=st.lists(
        st.tuples(
            st.integers(0, 3), st.integers(1, 3), st.sampled_from([0.1, 0.3, 0.5, 0.9]), _box
        ),
        max_size=40,
    ),
    threshold=st.sampled_from([0.3, 0.5, 0.7]),
    border=st.sampled_from(["include", "half", "exclude"]),
    ignore_neutral=st.booleans(),
)
def test_vectorised_matching_equals_the_voc_loop(gts, dets, threshold, border, ignore_neutral):
    # Small integer boxes on few images give many IoU ties and tied confidences; with a stable
    # sort both implementations must agree detection by detection.
    det_rows = [(i, c, conf, *box) for i, c, conf, box in dets]
    predictions = [[(i, conf, *box) for i, c, conf, box in dets if c == k] for k in range(4)]
    labels = [[[c, *box] for i, c, box, _ in gts if i == image] for image in range(4)]
    neutral = [[flag for i, _, _, flag in gts if i == image] for image in range(4)]
    expected = reference.voc_match(
        predictions, labels, neutral, range(4), 3, threshold, border, ignore_neutral, "stable"
    )
    m = match_detection_arrays(
        [r[0] for r in det_rows],
        [r[1] for r in det_rows],
        [r[2] for r in det_rows],
        np.array([r[3:] for r in det_rows], dtype=float).reshape(-1, 4),
        [g[0] for g in gts],
        [g[1] for g in gts],
        np.array([g[2] for g in gts], dtype=float).reshape(-1, 4),
        [g[3] for g in gts],
        n_classes=3,
        matching_iou_threshold=threshold,
        border_pixels=border,
        ignore_neutral_boxes=ignore_neutral,
        sorting_algorithm="stable",
    )
    for c in range(1, 4):
        assert m.true_positives[c].tolist() == expected[c][0].tolist()
        assert m.false_positives[c].tolist() == expected[c][1].tolist()


# ---------------------------------------------------------------------------------------------
# Conversions and input checks
# ---------------------------------------------------------------------------------------------


def test_prediction_results_from_detections_groups_by_class():
    detections = [
        np.array([[2, 0.9, 1, 2, 3, 4], [1, 0.8, 5, 6, 7, 8]]),
        np.zeros((0, 6)),
        np.array([[2, 0.7, 9, 9, 10, 10]]),
    ]
    results = prediction_results_from_detections(detections, ["a", "b", "c"], 2)
    assert results[0] == []
    assert results[1] == [("a", 0.8, 5.0, 6.0, 7.0, 8.0)]
    assert results[2] == [("a", 0.9, 1.0, 2.0, 3.0, 4.0), ("c", 0.7, 9.0, 9.0, 10.0, 10.0)]
    with pytest.raises(ValueError, match="class id 3"):
        prediction_results_from_detections([np.array([[3, 0.5, 0, 0, 1, 1]])], ["a"], 2)


@pytest.mark.parametrize(
    "preds, labels, ids, message",
    [
        ([[], [("zz", 0.9, 0, 0, 1, 1)]], [np.zeros((0, 5))], ["a"], "image id 'zz'"),
        ([[], [("a", 0.9, 0, 0, 1)]], [np.zeros((0, 5))], ["a"], r"prediction_results\[1\]\[0\]"),
        ([[]], [np.zeros((0, 5))], ["a"], "n_classes \\+ 1 = 2 lists"),
        ([[], []], [np.zeros((0, 5))], ["a", "a"], "label arrays for 2 image ids"),
        ([[], []], [np.zeros((0, 5))] * 2, ["a", "a"], "'a' twice"),
        ([[], []], [np.array([[1, 2, 3]])], ["a"], "labels of image 'a'"),
    ],
)
def test_match_predictions_rejects_bad_input(preds, labels, ids, message):
    with pytest.raises(ValueError, match=message):
        match_predictions(preds, labels, ids, 1)


def test_match_predictions_rejects_bad_settings():
    labels, preds = [np.zeros((0, 5))], [[], []]
    with pytest.raises(ValueError, match="border_pixels"):
        match_predictions(preds, labels, ["a"], 1, border_pixels="inside")
    with pytest.raises(ValueError, match="sorting_algorithm"):
        match_predictions(preds, labels, ["a"], 1, sorting_algorithm="bubble")
    with pytest.raises(ValueError, match="matching_iou_threshold"):
        match_predictions(preds, labels, ["a"], 1, matching_iou_threshold=1.5)
    with pytest.raises(ValueError, match="eval_neutral of image 'a' has 2 flags for 0 boxes"):
        match_predictions(preds, labels, ["a"], 1, eval_neutral=[[True, False]])
    with pytest.raises(ValueError, match="class id 5 is outside 0..1"):
        count_ground_truth([np.array([[5, 0, 0, 1, 1]])], 1)
    with pytest.raises(ValueError, match="n_classes"):
        count_ground_truth([], 0)


def test_ground_truth_containers_give_the_same_flat_arrays():
    # Arrays, nested lists, extra columns and None flags take different internal paths.
    as_arrays = [
        np.array([[1, 0, 0, 5, 5], [2, 1, 1, 4, 4]]),
        np.zeros((0, 5)),
        np.array([[1, 2, 2, 3, 3]]),
    ]
    as_lists = [[[1, 0, 0, 5, 5], [2, 1, 1, 4, 4]], [], [[1, 2, 2, 3, 3]]]
    wide = [np.c_[a, np.full(len(a), 9)] for a in as_arrays]
    mixed = [as_lists[0], np.zeros((0, 6)), wide[2]]
    flags = [[False, True], [], [True]]
    reference = flatten_ground_truth(as_arrays, flags)
    for labels in (as_lists, wide, mixed):
        for got, want in zip(flatten_ground_truth(labels, flags), reference):
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(reference[0], [0, 0, 2])
    np.testing.assert_array_equal(reference[3], [False, True, True])
    with_none = flatten_ground_truth(as_lists, [[False, True], None, None])
    np.testing.assert_array_equal(with_none[3], [False, True, False])
    with pytest.raises(ValueError, match="class id 1.5 of image 'b' is not an integer"):
        flatten_ground_truth([[], [[1.5, 0, 0, 1, 1]]], image_ids=["a", "b"])


def test_match_detection_arrays_rejects_bad_detections():
    gt = ([0], [1], np.array([[0, 0, 10, 10]]), [False])
    with pytest.raises(ValueError, match=r"det_class_id\[1\] = 0 is outside"):
        match_detection_arrays([0, 0], [1, 0], [0.5, 0.4], np.zeros((2, 4)), *gt, n_classes=1)
    with pytest.raises(ValueError, match="det_confidence is NaN at position 0"):
        match_detection_arrays([0], [1], [np.nan], np.zeros((1, 4)), *gt, n_classes=1)
    with pytest.raises(ValueError, match="det_boxes has 1 rows, expected 2"):
        match_detection_arrays([0, 0], [1, 1], [0.5, 0.4], np.zeros((1, 4)), *gt, n_classes=1)


def test_threshold_zero_still_needs_an_overlap():
    # VOCevaldet only considers boxes that overlap; at threshold 0 a detection far from every
    # box stays a false positive, one that touches the box is a true positive.
    gt = ([0], [1], np.array([[0, 0, 10, 10]]), [False])
    m = match_detection_arrays(
        [0, 0],
        [1, 1],
        [0.9, 0.8],
        np.array([[50, 50, 60, 60], [9, 9, 20, 20]]),
        *gt,
        n_classes=1,
        matching_iou_threshold=0.0,
    )
    assert m.true_positives[1].tolist() == [0, 1]
    assert m.false_positives[1].tolist() == [1, 0]


def test_evaluate_predictions_on_an_empty_dataset_warns_and_returns_nan():
    with pytest.warns(UserWarning, match="no ground-truth"):
        result = evaluate_predictions([[], []], [], [], 1)
    assert np.isnan(result.mean_average_precision)


def test_importing_eval_utils_does_not_import_keras(imports_leave_out):
    imports_leave_out(
        [
            "eval_utils.average_precision_evaluator",
            "eval_utils.voc_io",
            "eval_utils.coco_utils",
            "eval_utils.plots",
            "eval_utils._inference",
        ],
        absent=("keras", "tensorflow", "jax", "torch", "matplotlib", "pycocotools"),
    )
