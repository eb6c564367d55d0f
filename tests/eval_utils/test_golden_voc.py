"""Parity with the original's evaluator (../shared/golden/evaluator_*.json) on real VOC data.

11-point ("sample") values are the original's and equal the golden. All-point ("integrate")
values are the golden's CORRECT VOC2010+ values, not the original's (bug 17). With
border_pixels="include" the golden's CORRECT block uses the VOC devkit IoU (bug 1 fixed); the
original's own numbers under ``original`` differ for classes 1, 2, 5, 15 and 16 and are checked to
differ here too.
"""

import numpy as np
import pytest

from eval_utils.average_precision_evaluator import Evaluator, evaluate_predictions
from eval_utils.voc_io import read_detection_folder, read_voc_ground_truth

AP_ATOL = 1e-9  # the golden README's tolerance for APs; counts are exact


class _Dataset:
    def __init__(self, labels, image_ids, eval_neutral):
        self.labels, self.image_ids, self.eval_neutral = labels, image_ids, eval_neutral


def _check_block(result, block, mode):
    key = "ap_11_point" if mode == "sample" else "ap_all_point"
    assert list(result.num_gt_per_class) == block["num_gt_per_class"]
    for per_class in block["per_class"]:
        c = per_class["class_id"]
        assert len(result.true_positives[c]) == per_class["n_predictions"]
        assert result.true_positives[c].tolist() == per_class["true_positives"]
        assert result.false_positives[c].tolist() == per_class["false_positives"]
        assert (
            result.cumulative_true_positives[c].tolist() == per_class["cumulative_true_positives"]
        )
        assert (
            result.cumulative_false_positives[c].tolist() == per_class["cumulative_false_positives"]
        )
        np.testing.assert_allclose(
            result.cumulative_precisions[c], per_class["cumulative_precisions"], rtol=0, atol=1e-12
        )
        np.testing.assert_allclose(
            result.cumulative_recalls[c], per_class["cumulative_recalls"], rtol=0, atol=1e-12
        )
        assert result.average_precisions[c] == pytest.approx(per_class[key], abs=AP_ATOL)
    np.testing.assert_allclose(result.average_precisions, block[key], rtol=0, atol=AP_ATOL)
    mean_key = "mAP_11_point" if mode == "sample" else "mAP_all_point"
    assert result.mean_average_precision == pytest.approx(block[mean_key], abs=AP_ATOL)


@pytest.mark.parametrize("border_pixels", ["include", "half"])
@pytest.mark.parametrize("mode", ["sample", "integrate"])
def test_voc2012_sample_from_golden_inputs(golden, border_pixels, mode):
    meta = golden("evaluator_voc2012_sample").meta
    inputs, settings = meta["inputs"], meta["settings"]
    result = evaluate_predictions(
        inputs["prediction_results"],
        inputs["labels"],
        inputs["image_ids"],
        meta["n_classes"],
        eval_neutral=inputs["eval_neutral"],
        ignore_neutral_boxes=settings["ignore_neutral_boxes"],
        matching_iou_threshold=settings["matching_iou_threshold"],
        border_pixels=border_pixels,
        average_precision_mode=mode,
        num_recall_points=settings["num_recall_points"],
    )
    _check_block(result, meta[f"border_pixels_{border_pixels}"], mode)


def test_voc2012_sample_from_the_files_with_the_readers(golden, shared_data_dir):
    # The same numbers starting from Annotations/*.xml and detections/*.txt on disk.
    meta = golden("evaluator_voc2012_sample").meta
    root = shared_data_dir / "voc2012_sample"
    classes = ["background", *(root / "voc.names").read_text().split()]
    assert classes == meta["class_names"]
    labels, neutral, ids = read_voc_ground_truth(
        root / "Annotations", classes, root / "ImageSets" / "Main" / "test.txt"
    )
    assert ids == meta["inputs"]["image_ids"]
    assert [lab.astype(int).tolist() for lab in labels] == meta["inputs"]["labels"]
    assert [n.tolist() for n in neutral] == meta["inputs"]["eval_neutral"]
    preds = read_detection_folder(root / "detections", ids, n_classes=20)
    for ours, theirs in zip(preds, meta["inputs"]["prediction_results"]):
        assert [(r[0], *map(float, r[1:])) for r in theirs] == ours
    for mode in ("sample", "integrate"):
        result = evaluate_predictions(
            preds, labels, ids, 20, eval_neutral=neutral, average_precision_mode=mode
        )
        _check_block(result, meta["border_pixels_include"], mode)


def test_include_block_differs_from_the_original_where_bug1_bites(golden):
    # Guard that the "include" test above really checks the fix: the original's (buggy IoU)
    # 11-point APs differ from the CORRECT ones for the classes the golden README names.
    block = golden("evaluator_voc2012_sample").meta["border_pixels_include"]
    original = np.asarray(block["original"]["ap_sample_11"])
    differs = np.flatnonzero(np.abs(original - np.asarray(block["ap_11_point"])) > 1e-9)
    assert differs.tolist() == [1, 2, 5, 15, 16]
    buggy = np.asarray(block["original"]["ap_integrate_BUGGY"])
    assert np.all(np.abs(buggy[1:] - np.asarray(block["ap_all_point"])[1:]) > 1e-6)


@pytest.mark.parametrize("mode", ["sample", "integrate"])
@pytest.mark.parametrize("verbose", [False, True])
def test_voc2012_sample_through_the_evaluator_steps(golden, mode, verbose, capsys):
    # The Evaluator's public steps on a dataset object with labels / image_ids / eval_neutral and
    # fixed predictions; verbose=False must give the same (the original matched only the first
    # prediction of each class then, bug 15).
    meta = golden("evaluator_voc2012_sample").meta
    inputs = meta["inputs"]
    dataset = _Dataset(inputs["labels"], inputs["image_ids"], inputs["eval_neutral"])
    evaluator = Evaluator(model=None, n_classes=20, data_generator=dataset)
    evaluator.prediction_results = inputs["prediction_results"]
    num_gt = evaluator.get_num_gt_per_class(verbose=verbose, ret=True)
    tp, fp, ctp, cfp = evaluator.match_predictions(
        border_pixels="include", verbose=verbose, ret=True
    )
    precisions, recalls = evaluator.compute_precision_recall(verbose=verbose, ret=True)
    aps = evaluator.compute_average_precisions(mode=mode, verbose=verbose, ret=True)
    mean_ap = evaluator.compute_mean_average_precision(ret=True)
    assert evaluator.mean_average_precision == mean_ap
    result = type("R", (), {})()
    (
        result.num_gt_per_class,
        result.true_positives,
        result.false_positives,
        result.cumulative_true_positives,
        result.cumulative_false_positives,
        result.cumulative_precisions,
        result.cumulative_recalls,
        result.average_precisions,
        result.mean_average_precision,
    ) = (num_gt, tp, fp, ctp, cfp, precisions, recalls, aps, mean_ap)
    _check_block(result, meta["border_pixels_include"], mode)
    if not verbose:
        assert capsys.readouterr().out == ""


@pytest.mark.parametrize("mode", ["sample", "integrate"])
def test_tiny_case(golden, mode):
    # 2 images, 2 classes, one difficult box; the walkthrough in the json explains every number.
    meta = golden("evaluator_tiny").meta
    inputs, settings, expected = meta["inputs"], meta["settings"], meta["expected"]
    result = evaluate_predictions(
        inputs["prediction_results"],
        inputs["labels"],
        inputs["image_ids"],
        meta["n_classes"],
        eval_neutral=inputs["eval_neutral"],
        ignore_neutral_boxes=settings["ignore_neutral_boxes"],
        matching_iou_threshold=settings["matching_iou_threshold"],
        border_pixels=settings["border_pixels"],
        average_precision_mode=mode,
        num_recall_points=settings["num_recall_points"],
    )
    _check_block(result, expected, mode)
    if mode == "integrate":
        # Hand values: class 1 = 1/3 * 1 + 1/3 * 2/3 = 5/9, class 2 = 1/2 * 1 + 1/2 * 2/3 = 5/6;
        # the original's buggy "integrate" gave 1/3 and 1/2.
        assert result.average_precisions[1:] == pytest.approx([5 / 9, 5 / 6], abs=1e-12)
        assert expected["original"]["ap_integrate_BUGGY"][1:] != pytest.approx([5 / 9, 5 / 6])
    else:
        assert result.average_precisions[1:] == pytest.approx([6 / 11, 28 / 33], abs=1e-12)


def test_stable_sort_gives_the_same_result_as_quicksort_without_ties(golden):
    meta = golden("evaluator_voc2012_sample").meta
    inputs = meta["inputs"]
    results = [
        evaluate_predictions(
            inputs["prediction_results"],
            inputs["labels"],
            inputs["image_ids"],
            20,
            eval_neutral=inputs["eval_neutral"],
            sorting_algorithm=kind,
        ).average_precisions
        for kind in ("quicksort", "stable", "heapsort")
    ]
    assert results[0] == results[1] == results[2]
