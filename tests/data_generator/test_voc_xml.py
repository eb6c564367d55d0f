"""The one VOC XML reader (`data_generator.voc_xml`) and the flag rule both parsers share."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from data_generator.data_report import DataWarning
from data_generator.object_detection_2d_data_generator import DataGenerator
from data_generator.voc_xml import VocXmlError, parse_flag, read_voc_xml

CLASSES = ["background", "cat", "dog"]


@pytest.mark.parametrize(
    "text, value",
    [
        (None, 0),  # a missing tag (the original crashed on it)
        ("", 0),  # an empty tag (the original crashed: int(''))
        ("0", 0),
        ("1", 1),
        (" 1 ", 1),  # int(' 1 ') == 1 in the original too
        ("00", 0),  # int('00') == 0: not difficult
        ("+0", 0),
        ("2", 2),  # non-zero: set (the original's `if difficult`)
        ("1.0", 1),  # the original crashed; the number is what the writer meant
        ("0.0", 0),
    ],
)
def test_parse_flag_is_the_originals_int_rule_made_total(text, value):
    assert parse_flag(text) == value


@pytest.mark.parametrize("text", ["abc", "true", "nan", " "])
def test_parse_flag_rejects_what_is_not_a_number(text):
    with pytest.raises(ValueError):
        parse_flag(text)


def test_read_voc_xml_reads_objects_flags_boxes_and_size(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(
        "<annotation><size><width>60</width><height>40</height></size>"
        "<object><name> cat </name><difficult>abc</difficult>"
        "<bndbox><xmin>1</xmin><ymin>2.5</ymin><xmax>30</xmax><ymax>20</ymax></bndbox>"
        "<part><name>head</name></part></object>"
        "<object><name>dog</name><truncated>1</truncated></object>"
        "<object><name>dog</name><bndbox><xmin>ten</xmin></bndbox></object>"
        "</annotation>"
    )
    annotation = read_voc_xml(path)
    assert annotation.size() == (60, 40)
    cat, no_box, bad_box = annotation.objects
    assert (cat.name, cat.truncated, cat.difficult) == ("cat", 0, 0)
    assert set(cat.flag_errors) == {"difficult"}
    assert cat.box == {"xmin": 1, "ymin": 2.5, "xmax": 30, "ymax": 20}
    assert (no_box.truncated, no_box.box, no_box.box_error) == (1, None, "no <bndbox>")
    assert bad_box.box_error == "<xmin> = 'ten'"


def test_read_voc_xml_size_is_none_when_missing_or_zero(tmp_path):
    (tmp_path / "a.xml").write_text("<annotation><size><width>0</width></size></annotation>")
    assert read_voc_xml(tmp_path / "a.xml").size() is None
    (tmp_path / "b.xml").write_text("<annotation><object>")
    with pytest.raises(VocXmlError):
        read_voc_xml(tmp_path / "b.xml")


def test_parse_xml_reads_each_flag_on_its_own(tmp_path):
    # A malformed <truncated> no longer clears a valid <difficult> (it used to set both to 0).
    (tmp_path / "a.xml").write_text(
        "<annotation><size><width>60</width><height>40</height></size>"
        "<object><name>cat</name><truncated>yes</truncated><difficult>1</difficult>"
        "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>20</ymax></bndbox></object>"
        "</annotation>"
    )
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((40, 60, 3), np.uint8))
    (tmp_path / "set.txt").write_text("a\n")
    dataset = DataGenerator()
    with pytest.warns(DataWarning):
        dataset.parse_xml([tmp_path], [tmp_path / "set.txt"], [tmp_path], CLASSES, verbose=False)
    assert dataset.eval_neutral == [[True]]
    (issue,) = dataset.data_report.issues
    assert "object 0: bad <truncated>" in issue.reason and issue.action == "kept"
