"""The pure VOC functions live in `eval_utils.voc_ap` / `eval_utils.detection_arrays`; the
original import path `eval_utils.average_precision_evaluator` still gives the same objects.

Their behaviour is tested in test_average_precision.py and test_golden_voc.py."""

import pytest

import eval_utils.average_precision_evaluator as original_path
from eval_utils import detection_arrays, voc_ap

MOVED = {
    voc_ap: [
        "AP_MODES",
        "SORTING_ALGORITHMS",
        "MatchResult",
        "EvaluationResult",
        "count_ground_truth",
        "match_detection_arrays",
        "match_predictions",
        "precision_recall",
        "average_precision",
        "mean_average_precision",
        "evaluate_predictions",
    ],
    detection_arrays: [
        "PRED_FORMAT",
        "GT_FORMAT",
        "flatten_ground_truth",
        "flatten_prediction_results",
        "prediction_results_from_detections",
    ],
}


@pytest.mark.parametrize(
    "module, name", [(module, name) for module, names in MOVED.items() for name in names]
)
def test_original_import_path_re_exports_the_moved_name(module, name):
    assert getattr(original_path, name) is getattr(module, name)
    assert name in original_path.__all__


def test_original_import_path_exports_exactly_its_former_public_names():
    moved = {name for names in MOVED.values() for name in names}
    assert set(original_path.__all__) == moved | {"Evaluator"}
