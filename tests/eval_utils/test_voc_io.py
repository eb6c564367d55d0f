"""Readers and writers of VOC annotations, detection folders and VOC results files."""

import numpy as np
import pytest

from eval_utils.average_precision_evaluator import Evaluator
from eval_utils.voc_io import (
    read_detection_file,
    read_detection_folder,
    read_image_set,
    read_voc_annotation,
    read_voc_ground_truth,
    read_voc_results,
    write_voc_results,
)

CLASSES = ["background", "cat", "dog"]

XML = """<annotation><filename>x.jpg</filename>
<object><name>dog</name><difficult>0</difficult>
  <bndbox><xmin>10</xmin><ymin>20</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>
  <part><name>head</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox>
  </part></object>
<object><name>cat</name><difficult>1</difficult>
  <bndbox><xmin>1.5</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>
</annotation>"""


def test_read_voc_annotation_takes_the_object_box_not_its_parts(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text(XML)
    labels, difficult = read_voc_annotation(path, CLASSES)
    np.testing.assert_array_equal(labels, [[2, 10, 20, 30, 40], [1, 1.5, 2, 3, 4]])
    assert difficult.tolist() == [False, True]


@pytest.mark.parametrize(
    "bad, message",
    [
        ("<name>dog</name>", "object name 'horse' is not in classes"),
        ("<xmin>10</xmin>", r"bndbox/xmin is not a number: 'ten'"),
    ],
)
def test_read_voc_annotation_names_the_file_and_value(tmp_path, bad, message):
    replacement = {"<name>dog</name>": "<name>horse</name>", "<xmin>10</xmin>": "<xmin>ten</xmin>"}
    path = tmp_path / "bad.xml"
    path.write_text(XML.replace(bad, replacement[bad]))
    with pytest.raises(ValueError, match=message) as info:
        read_voc_annotation(path, CLASSES)
    assert "bad.xml" in str(info.value)


def test_read_voc_ground_truth_from_an_image_set_and_missing_file(tmp_path):
    (tmp_path / "a.xml").write_text(XML)
    (tmp_path / "b.xml").write_text("<annotation></annotation>")
    (tmp_path / "set.txt").write_text("a\n\nb\n")
    assert read_image_set(tmp_path / "set.txt") == ["a", "b"]
    labels, neutral, ids = read_voc_ground_truth(tmp_path, CLASSES, tmp_path / "set.txt")
    assert ids == ["a", "b"]
    assert labels[1].shape == (0, 5) and neutral[1].shape == (0,)
    with pytest.raises(FileNotFoundError, match="c.xml"):
        read_voc_ground_truth(tmp_path, CLASSES, ["a", "c"])
    (tmp_path / "d.xml").write_text("<annotation>")
    with pytest.raises(ValueError, match="d.xml: not valid XML"):
        read_voc_ground_truth(tmp_path, CLASSES, ["d"])


def test_read_detection_folder_groups_by_class_and_handles_missing_files(tmp_path):
    (tmp_path / "a.txt").write_text("1 0.9 1 2 3 4\n0 0.5 5 6 7 8\n\n")
    (tmp_path / "c.txt").write_text("1 0.25 0 0 10 10\n")
    results = read_detection_folder(tmp_path, ["a", "b", "c"], n_classes=2)
    assert results == [
        [],
        [("a", 0.5, 5.0, 6.0, 7.0, 8.0)],
        [("a", 0.9, 1.0, 2.0, 3.0, 4.0), ("c", 0.25, 0.0, 0.0, 10.0, 10.0)],
    ]
    with pytest.raises(FileNotFoundError, match="b.txt"):
        read_detection_folder(tmp_path, ["a", "b"], n_classes=2, missing="error")


@pytest.mark.parametrize(
    "content, message",
    [
        ("1 0.9 1 2 3\n", r"line 1: expected 6 values, got 5"),
        ("0 0.9 1 2 3 4\n1 high 1 2 3 4\n", r"line 2: 'high' is not a number"),
        ("5 0.9 1 2 3 4\n", r"line 1: class index 5 gives class id 6, outside 1..2"),
        ("1.5 0.9 1 2 3 4\n", r"line 1: class index '1.5' is not an integer"),
    ],
)
def test_read_detection_file_errors_name_file_line_and_value(tmp_path, content, message):
    path = tmp_path / "img.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        read_detection_file(path, n_classes=2)
    assert "img.txt" in str(info.value)


def test_voc_results_round_trip_and_file_format(tmp_path):
    results = [
        [],
        [("2007_000027", 0.123456, 1.5, 2.0, 3.0, 4.0), (42, 0.5, 0.0, 0.0, 1.0, 1.0)],
        [],
    ]
    paths = write_voc_results(results, tmp_path / "comp3_det_test_", CLASSES)
    assert [p.rsplit("/", 1)[1] for p in paths] == [
        "comp3_det_test_cat.txt",
        "comp3_det_test_dog.txt",
    ]
    lines = (tmp_path / "comp3_det_test_cat.txt").read_text().splitlines()
    # String ids as they are (the original crashed on them), int ids zero-padded to 6 digits,
    # confidences to 4 decimals.
    assert lines == ["2007_000027 0.1235 1.5 2.0 3.0 4.0", "000042 0.5 0.0 0.0 1.0 1.0"]
    assert (tmp_path / "comp3_det_test_dog.txt").read_text() == ""
    back = read_voc_results(tmp_path / "comp3_det_test_", 2, CLASSES)
    assert back == [
        [],
        [("2007_000027", 0.1235, 1.5, 2.0, 3.0, 4.0), ("000042", 0.5, 0.0, 0.0, 1.0, 1.0)],
        [],
    ]


def test_evaluator_write_predictions_to_txt_uses_class_ids_without_names(tmp_path, capsys):
    evaluator = Evaluator(model=None, n_classes=2, data_generator=None)
    with pytest.raises(ValueError, match="predict_on_dataset"):
        evaluator.write_predictions_to_txt(out_file_prefix=str(tmp_path / "r_"))
    evaluator.prediction_results = [[], [("x", 0.9, 1, 2, 3, 4)], []]
    paths = evaluator.write_predictions_to_txt(out_file_prefix=str(tmp_path / "r_"), verbose=True)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["r_0001.txt", "r_0002.txt"]
    assert (tmp_path / "r_0001.txt").read_text() == "x 0.9 1.0 2.0 3.0 4.0\n"
    assert "Wrote 2 results files" in capsys.readouterr().out


# <difficult> values and what the original's rule (int(text) != 0) makes of them; the
# original crashed on the last four, here they are not difficult.
DIFFICULT_CASES = {"1": True, "0": False, "2": True, "1.0": True, "00": False, "0.0": False}
DIFFICULT_UNCRASHED = {"": False, None: False, "abc": False, "true": False}


def _difficult_dataset(tmp_path, cases):
    """One image per <difficult> value, each with one cat box; returns (root, image ids)."""
    import cv2

    ids = []
    for k, text in enumerate(cases):
        tag = "" if text is None else f"<difficult>{text}</difficult>"
        (tmp_path / f"i{k}.xml").write_text(
            "<annotation><size><width>60</width><height>40</height></size>"
            f"<object><name>cat</name>{tag}"
            "<bndbox><xmin>10</xmin><ymin>5</ymin><xmax>40</xmax><ymax>30</ymax></bndbox>"
            "</object></annotation>"
        )
        cv2.imwrite(str(tmp_path / f"i{k}.jpg"), np.zeros((40, 60, 3), np.uint8))
        ids.append(f"i{k}")
    (tmp_path / "set.txt").write_text("\n".join(ids) + "\n")
    return ids


def test_read_voc_annotation_reads_difficult_as_the_original_and_never_crashes(tmp_path):
    cases = {**DIFFICULT_CASES, **DIFFICULT_UNCRASHED}
    ids = _difficult_dataset(tmp_path, cases)
    with pytest.warns(UserWarning, match=r"i8.xml: object 0 \(cat\): <difficult> is not a number"):
        _, neutral, _ = read_voc_ground_truth(tmp_path, CLASSES, ids)
    assert [bool(n[0]) for n in neutral] == list(cases.values())


def test_voc_io_and_parse_xml_give_the_same_ground_truth_and_map(tmp_path):
    import warnings

    from data_generator.object_detection_2d_data_generator import DataGenerator
    from eval_utils.average_precision_evaluator import evaluate_predictions

    cases = {**DIFFICULT_CASES, **DIFFICULT_UNCRASHED}
    ids = _difficult_dataset(tmp_path, cases)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels, neutral, _ = read_voc_ground_truth(tmp_path, CLASSES, ids)
        dataset = DataGenerator()
        dataset.parse_xml([tmp_path], [tmp_path / "set.txt"], [tmp_path], CLASSES, verbose=False)
    assert dataset.image_ids == ids
    assert [n.tolist() for n in neutral] == dataset.eval_neutral
    np.testing.assert_array_equal(np.concatenate(labels), np.concatenate(dataset.labels))

    # The whole effect on VOC AP: one exact detection per image. Images whose box is not
    # difficult count it as a true positive; difficult ones ignore it (neither TP nor FP).
    # Before the shared reader, voc_io called '00', '0.0', 'abc' and 'true' difficult, so this
    # evaluation counted 3 ground truth boxes ('0', '' and no tag) instead of 7.
    predictions = [[], [(i, 0.9, 10.0, 5.0, 40.0, 30.0) for i in ids], []]
    result = evaluate_predictions(predictions, labels, ids, n_classes=2, eval_neutral=neutral)
    assert result.num_gt_per_class[1] == 7
    assert result.true_positives[1].sum() == 7 and result.false_positives[1].sum() == 0
    assert result.average_precisions[1] == 1.0
