"""COCO helpers: category maps, results conversion, and scoring through pycocotools."""

import json

import numpy as np
import pytest

from eval_utils.average_precision_evaluator import evaluate_predictions
from eval_utils.coco_utils import (
    COCO_STAT_NAMES,
    detections_to_coco_results,
    evaluate_coco,
    get_coco_category_maps,
    remap_coco_detections,
)
from eval_utils.voc_io import read_detection_folder, read_voc_ground_truth


def _tiny_coco(tmp_path):
    annotations = {
        "images": [
            {"id": 5, "file_name": "a.jpg", "width": 100, "height": 100},
            {"id": 9, "file_name": "b.jpg", "width": 100, "height": 100},
        ],
        "categories": [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 5,
                "category_id": 18,
                "bbox": [10, 10, 40, 30],
                "area": 1200,
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 9,
                "category_id": 3,
                "bbox": [0, 0, 20, 20],
                "area": 400,
                "iscrowd": 0,
            },
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(annotations))
    return path, annotations


def test_category_maps_follow_the_categories_order(tmp_path):
    path, _ = _tiny_coco(tmp_path)
    cats_to_classes, classes_to_cats, cats_to_names, classes_to_names = get_coco_category_maps(path)
    assert cats_to_classes == {18: 1, 3: 2}
    assert classes_to_cats == {1: 18, 2: 3}
    assert cats_to_names == {18: "dog", 3: "car"}
    assert classes_to_names == ["background", "dog", "car"]


def test_detections_to_coco_results_converts_corners_to_xywh():
    results = detections_to_coco_results(
        [np.array([[1, 0.98765, 10.04, 10.0, 50.0, 40.0]]), np.zeros((0, 6))],
        [np.int64(5), 9],
        {1: 18, 2: 3},
    )
    assert results == [
        {"image_id": 5, "category_id": 18, "bbox": [10.0, 10.0, 40.0, 30.0], "score": 0.988}
    ]
    assert type(results[0]["image_id"]) is int  # JSON-serialisable
    with pytest.raises(ValueError, match="class id 7 of image 'x'"):
        detections_to_coco_results([np.array([[7, 0.5, 0, 0, 1, 1]])], ["x"], {1: 18})


def test_perfect_detections_score_one_where_there_is_ground_truth(tmp_path):
    pytest.importorskip("pycocotools")
    path, annotations = _tiny_coco(tmp_path)
    results = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": 0.9,
        }
        for a in annotations["annotations"]
    ]
    stats = evaluate_coco(path, results)
    assert list(stats) == list(COCO_STAT_NAMES)
    # Areas: 1200 is "medium" (32^2 <= area < 96^2), 400 is "small"; nothing is "large".
    # COCOeval averages over 101 recall points in floating point: 1 up to rounding.
    for name in ("AP", "AP50", "AP75", "AP_small", "AP_medium"):
        assert stats[name] == pytest.approx(1.0, abs=1e-12)
    assert stats["AP_large"] == stats["AR_large"] == -1.0  # no large ground truth
    for name in ("AR1", "AR10", "AR100", "AR_small", "AR_medium"):
        assert stats[name] == pytest.approx(1.0, abs=1e-12)


def test_evaluate_coco_rejects_bad_results(tmp_path):
    pytest.importorskip("pycocotools")
    path, _ = _tiny_coco(tmp_path)
    good = {"image_id": 5, "category_id": 18, "bbox": [10, 10, 40, 30], "score": 0.9}
    with pytest.raises(ValueError, match="results is empty"):
        evaluate_coco(path, [])
    with pytest.raises(ValueError, match=r"results\[0\] names image_id 77"):
        evaluate_coco(path, [{**good, "image_id": 77}])
    with pytest.raises(ValueError, match=r"results\[0\] names category_id 1"):
        evaluate_coco(path, [{**good, "category_id": 1}])
    with pytest.raises(ValueError, match=r"results\[0\] lacks \['score'\]"):
        evaluate_coco(path, [{k: v for k, v in good.items() if k != "score"}])


def test_voc2012_sample_coco_files_scored_through_pycocotools(shared_data_dir, tmp_path):
    pytest.importorskip("pycocotools")
    coco_dir = shared_data_dir / "voc2012_sample" / "coco"
    # detections.json numbers images and categories on its own: remap by file name and name.
    results = remap_coco_detections(coco_dir / "detections.json", coco_dir / "instances.json")
    assert len(results) == 452
    results_file = tmp_path / "results.json"
    results_file.write_text(json.dumps(results))
    stats = evaluate_coco(coco_dir / "instances.json", results_file)
    assert all(0.0 <= v <= 1.0 for v in stats.values())
    assert stats["AP50"] > stats["AP75"] > stats["AP"] > 0.0

    # Cross-check AP50 with this package's VOC evaluator on the same data from the VOC files:
    # all 273 boxes counted (COCO has no "difficult"), continuous boxes ("half"), 101 recall
    # points as COCOeval. The VOC rule (a detection takes its best box even if taken) and
    # COCO's (best free box) agree on this data, so the two must give the same number.
    root = shared_data_dir / "voc2012_sample"
    classes = ["background", *(root / "voc.names").read_text().split()]
    labels, neutral, ids = read_voc_ground_truth(
        root / "Annotations", classes, root / "ImageSets" / "Main" / "test.txt"
    )
    voc = evaluate_predictions(
        read_detection_folder(root / "detections", ids, 20),
        labels,
        ids,
        20,
        eval_neutral=neutral,
        ignore_neutral_boxes=False,
        border_pixels="half",
        num_recall_points=101,
    )
    assert int(voc.num_gt_per_class.sum()) == 273
    assert stats["AP50"] == pytest.approx(voc.mean_average_precision, abs=1e-12)


def test_remap_coco_detections_names_unknown_images_and_categories(tmp_path):
    path, annotations = _tiny_coco(tmp_path)
    detections = {
        "images": [{"id": 0, "file_name": "a.jpg"}],
        "categories": [{"id": 0, "name": "dog"}],
        "annotations": [
            {"id": 0, "image_id": 0, "category_id": 0, "bbox": [1, 2, 3, 4], "score": 0.5}
        ],
    }
    assert remap_coco_detections(detections, path) == [
        {"image_id": 5, "category_id": 18, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5}
    ]
    with pytest.raises(ValueError, match="'c.jpg' is not in the ground truth"):
        remap_coco_detections({**detections, "images": [{"id": 0, "file_name": "c.jpg"}]}, path)
    with pytest.raises(ValueError, match="'cat' is not in the ground truth"):
        remap_coco_detections({**detections, "categories": [{"id": 0, "name": "cat"}]}, path)
    no_score = {
        **detections,
        "annotations": [{"id": 3, "image_id": 0, "category_id": 0, "bbox": [1, 2, 3, 4]}],
    }
    with pytest.raises(ValueError, match="annotation 0 \\(id 3\\) has no 'score'"):
        remap_coco_detections(no_score, path)
