"""DataGenerator.parse_xml / parse_csv / parse_json: golden parity with the original and messy data.

Golden: ../shared/golden/parse_xml_*.json (outputs of the original parse_xml on ../shared/data).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from data_generator.data_report import DataValidationError, DataWarning
from data_generator.object_detection_2d_data_generator import DataGenerator

# ---------------------------------------------------------------------------- golden parity


def _assert_matches_case(dataset: DataGenerator, case: dict) -> None:
    assert dataset.dataset_size == case["dataset_size"]
    assert dataset.get_dataset_size() == case["dataset_size"]
    assert dataset.image_ids == case["image_ids"]
    assert [os.path.basename(f) for f in dataset.filenames] == case["filenames_basename"]
    assert len(dataset.labels) == len(case["labels"])
    for got, expected, image_id in zip(dataset.labels, case["labels"], case["image_ids"]):
        expected = np.asarray(expected, dtype=np.int64).reshape(-1, 5)
        assert got.shape == expected.shape, image_id
        assert got.dtype == np.int64, image_id  # integer XML coordinates stay integers
        np.testing.assert_array_equal(got, expected, err_msg=image_id)
    assert [list(map(bool, e)) for e in dataset.eval_neutral] == case["eval_neutral"]


def _voc_call(data_dir: Path, call: dict) -> dict:
    return {
        "images_dirs": [str(data_dir / p) for p in call["images_dirs"]],
        "image_set_filenames": [str(data_dir / p) for p in call["image_set_filenames"]],
        "annotations_dirs": [str(data_dir / p) for p in call["annotations_dirs"]],
        "classes": call["classes"],
    }


@pytest.mark.parametrize(
    "case_name", ["default", "exclude_difficult", "exclude_truncated", "include_classes_person_dog"]
)
def test_parse_xml_voc2012_sample_matches_golden(golden, shared_data_dir, case_name):
    meta = golden("parse_xml_voc2012_sample").meta
    case = meta["cases"][case_name]
    dataset = DataGenerator()
    dataset.parse_xml(**_voc_call(shared_data_dir, meta["call"]), verbose=False, **case["kwargs"])
    _assert_matches_case(dataset, case)
    assert len(dataset.data_report) == 0  # the real VOC sample has no bad items


def _single_dataset_call(data_dir: Path, root: str, image_set: str, classes) -> dict:
    return {
        "images_dirs": [str(data_dir / root / "JPEGImages")],
        "image_set_filenames": [image_set],
        "annotations_dirs": [str(data_dir / root / "Annotations")],
        "classes": classes,
    }


@pytest.mark.parametrize("case_name", ["test", "trainval", "degenerate_only"])
def test_parse_xml_bccd_matches_golden(golden, golden_dir, shared_data_dir, case_name):
    meta = golden("parse_xml_bccd").meta
    case = meta["cases"][case_name]
    if case_name == "degenerate_only":
        image_set = str(golden_dir / "bccd_degenerate_ids.txt")
    else:
        image_set = str(shared_data_dir / case["image_set"])
    dataset = DataGenerator()
    call = _single_dataset_call(shared_data_dir, meta["dataset_root"], image_set, meta["classes"])
    with warnings.catch_warnings():  # the zero-size boxes are reported (tested below)
        warnings.simplefilter("ignore", DataWarning)
        dataset.parse_xml(**call, verbose=False)
    _assert_matches_case(dataset, case)


def test_parse_xml_raccoon_matches_golden(golden, shared_data_dir):
    meta = golden("parse_xml_raccoon").meta
    case = meta["cases"]["test"]
    dataset = DataGenerator()
    call = _single_dataset_call(
        shared_data_dir,
        meta["dataset_root"],
        str(shared_data_dir / case["image_set"]),
        meta["classes"],
    )
    dataset.parse_xml(**call, verbose=False)
    _assert_matches_case(dataset, case)


def test_bccd_zero_size_boxes_are_kept_and_reported_or_dropped(golden, golden_dir, shared_data_dir):
    """The two zero-size BCCD boxes: kept verbatim by default (the original), but reported; with
    degenerate_boxes='drop' they go and the labels equal the original generate()'s output."""
    meta = golden("parse_xml_bccd").meta
    call = _single_dataset_call(
        shared_data_dir, "bccd/BCCD", str(golden_dir / "bccd_degenerate_ids.txt"), meta["classes"]
    )
    dataset = DataGenerator()
    with pytest.warns(DataWarning, match="BloodImage_00338.xml"):
        dataset.parse_xml(**call, verbose=False)
    reported = [(Path(i.file).name, i.action) for i in dataset.data_report]
    assert reported == [("BloodImage_00338.xml", "kept"), ("BloodImage_00343.xml", "kept")]
    assert "[504, 337, 504, 337]" in dataset.data_report.issues[0].reason

    dropped = DataGenerator()
    with pytest.warns(DataWarning):
        dropped.parse_xml(**call, verbose=False, degenerate_boxes="drop")
    expected = meta["oddities"]["generate_processed_labels"]
    assert dropped.image_ids == expected["image_ids"]
    for got, want in zip(dropped.labels, expected["labels"]):
        np.testing.assert_array_equal(got, np.asarray(want))
    # eval_neutral stays aligned with the remaining boxes
    assert [len(e) for e in dropped.eval_neutral] == [len(y) for y in dropped.labels]


def test_parse_xml_without_annotations_gives_no_labels(shared_data_dir):
    root = shared_data_dir / "raccoon"
    dataset = DataGenerator()
    images, filenames, labels, image_ids, eval_neutral = dataset.parse_xml(
        images_dirs=[str(root / "JPEGImages")],
        image_set_filenames=[str(root / "ImageSets/Main/test.txt")],
        annotations_dirs=[],
        classes=["background", "raccoon"],
        ret=True,
        verbose=False,
    )
    assert images is None and labels is None and eval_neutral is None
    assert len(filenames) == len(image_ids) == 40


# ---------------------------------------------------------------------------- messy data

CLASSES = ["background", "cat", "dog"]


def _xml(objects, size=(60, 40), extra="") -> str:
    """A VOC annotation; objects are (name, xmin, ymin, xmax, ymax, difficult)."""
    size_xml = (
        ""
        if size is None
        else (f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    )
    body = "".join(
        f"<object><name>{name}</name><truncated>0</truncated><difficult>{d}</difficult>"
        f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>"
        "</object>"
        for name, x0, y0, x1, y1, d in objects
    )
    return f"<annotation><folder>x</folder>{size_xml}{body}{extra}</annotation>"


def _rgb(seed=0, size=(40, 60)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)


@pytest.fixture()
def messy_voc(tmp_path):
    """A small VOC-layout dataset with one instance of each kind of bad item."""
    images, annotations = tmp_path / "JPEGImages", tmp_path / "Annotations"
    images.mkdir()
    annotations.mkdir()
    items = {}

    def add(image_id, xml, image=None, writer=None):
        items[image_id] = True
        if xml is not None:
            (annotations / f"{image_id}.xml").write_text(xml)
        if writer is not None:
            writer(images / f"{image_id}.jpg")
        elif image is not None:
            cv2.imwrite(str(images / f"{image_id}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    rgb = _rgb()
    add("good", _xml([("cat", 5, 6, 30, 35, 0), ("dog", 31, 2, 59, 20, 1)]), rgb)
    add(
        "grayscale",
        _xml([("dog", 1, 1, 10, 10, 0)]),
        writer=lambda p: Image.fromarray(rgb[:, :, 0]).save(p, format="JPEG"),
    )
    add(
        "rgba_png_named_jpg",
        _xml([("cat", 2, 2, 20, 20, 0)]),
        writer=lambda p: Image.fromarray(np.dstack([rgb, rgb[:, :, 0]]), "RGBA").save(
            p, format="PNG"
        ),
    )
    add(
        "palette_png",
        _xml([("cat", 2, 2, 20, 20, 0)]),
        writer=lambda p: Image.fromarray(rgb).quantize(8).save(p, format="PNG"),
    )
    add("empty_annotation", _xml([]), rgb)
    add("zero_size_box", _xml([("cat", 5, 5, 5, 5, 0), ("dog", 3, 3, 13, 23, 0)]), rgb)
    add("box_outside", _xml([("cat", -4, 10, 70, 30, 0)]), rgb)
    add("no_size", _xml([("dog", 10, 10, 50, 30, 0)], size=None), rgb)
    add("zero_size_tag", _xml([("dog", 10, 10, 80, 30, 0)], size=(0, 0)), rgb)
    add("float_coords", _xml([("cat", "10.5", "11", "20.25", "30", 0)]), rgb)
    add("bad_coordinate", _xml([("cat", "ten", 1, 5, 5, 0), ("dog", 1, 1, 9, 9, 0)]), rgb)
    add("malformed_xml", "<annotation><object><name>cat</name>", rgb)
    add("missing_annotation", None, rgb)
    add("missing_image", _xml([("cat", 1, 1, 5, 5, 0)]))
    add(
        "unreadable_image",
        _xml([("cat", 1, 1, 5, 5, 0)]),
        writer=lambda p: p.write_bytes(b"not an image at all"),
    )
    set_file = tmp_path / "set.txt"
    set_file.write_text("\n".join(items) + "\n")
    return {
        "images_dirs": [str(images)],
        "image_set_filenames": [str(set_file)],
        "annotations_dirs": [str(annotations)],
        "classes": CLASSES,
        "ids": list(items),
        "rgb": rgb,
    }


def _call(messy):
    return {
        k: messy[k] for k in ("images_dirs", "image_set_filenames", "annotations_dirs", "classes")
    }


def _labels_by_id(dataset):
    return {i: y.tolist() for i, y in zip(dataset.image_ids, dataset.labels)}


def test_messy_voc_default_policy_reports_once_and_keeps_every_valid_item(messy_voc):
    dataset = DataGenerator()
    with pytest.warns(DataWarning) as record:
        dataset.parse_xml(**_call(messy_voc), verbose=False)
    assert len(record) == 1  # one summary, not one warning per item
    summary = str(record[0].message)

    dropped = {"malformed_xml", "missing_annotation", "missing_image"}
    assert dataset.image_ids == [i for i in messy_voc["ids"] if i not in dropped]
    labels = _labels_by_id(dataset)
    assert labels["good"] == [[1, 5, 6, 30, 35], [2, 31, 2, 59, 20]]
    assert labels["grayscale"] == [[2, 1, 1, 10, 10]]
    assert labels["empty_annotation"] == []
    assert labels["zero_size_box"] == [[1, 5, 5, 5, 5], [2, 3, 3, 13, 23]]  # kept verbatim
    assert labels["box_outside"] == [[1, 0, 10, 60, 30]]  # clipped to the 60 x 40 image
    assert labels["no_size"] == [[2, 10, 10, 50, 30]]  # inside: nothing to clip
    assert labels["zero_size_tag"] == [[2, 10, 10, 60, 30]]  # size read from the image, clipped
    assert labels["float_coords"] == [[1, 10.5, 11, 20.25, 30]]
    assert dataset.labels[dataset.image_ids.index("float_coords")].dtype == np.float64
    assert labels["bad_coordinate"] == [[2, 1, 1, 9, 9]]  # only the unparsable box goes
    # the unreadable image is only found when images are checked (or loaded)
    assert "unreadable_image" in dataset.image_ids
    assert dataset.eval_neutral[0] == [False, True]

    by_file = {(Path(i.file).stem, i.action) for i in dataset.data_report}
    assert by_file == {
        ("malformed_xml", "dropped image"),
        ("missing_annotation", "dropped image"),
        ("missing_image", "dropped image"),
        ("zero_size_box", "kept"),
        ("box_outside", "clipped box"),
        ("no_size", "fixed"),  # size read from the image
        ("zero_size_tag", "fixed"),
        ("zero_size_tag", "clipped box"),
        ("bad_coordinate", "dropped box"),
    }
    for name in ("malformed_xml.xml", "missing_image.jpg", "zero_size_box.xml", "box_outside.xml"):
        assert name in summary
    assert "<xmin> = 'ten'" in summary and "malformed XML" in summary
    assert "image file not found" in summary


def test_messy_voc_images_are_read_as_rgb_uint8(messy_voc):
    dataset = DataGenerator()
    with pytest.warns(DataWarning):
        dataset.parse_xml(**_call(messy_voc), verbose=False)
    for image_id in ("grayscale", "rgba_png_named_jpg", "palette_png", "good"):
        image = dataset._load_image(dataset.image_ids.index(image_id))
        assert image.shape == (40, 60, 3) and image.dtype == np.uint8, image_id
    rgb = messy_voc["rgb"]
    png = dataset._load_image(dataset.image_ids.index("rgba_png_named_jpg"))
    np.testing.assert_array_equal(png, rgb)  # lossless PNG: exactly the RGB channels
    gray = dataset._load_image(dataset.image_ids.index("grayscale"))
    assert np.array_equal(gray[:, :, 0], gray[:, :, 1])
    assert np.array_equal(gray[:, :, 0], gray[:, :, 2])
    assert np.abs(gray[:, :, 0].astype(int) - rgb[:, :, 0]).mean() < 20  # JPEG of channel 0


def test_messy_voc_check_images_drops_the_undecodable_file(messy_voc):
    dataset = DataGenerator()
    with pytest.warns(DataWarning, match="unreadable_image.jpg: unreadable image"):
        dataset.parse_xml(**_call(messy_voc), verbose=False, check_images=True)
    assert "unreadable_image" not in dataset.image_ids
    assert "palette_png" in dataset.image_ids and "grayscale" in dataset.image_ids
    # load_images_into_memory finds it as well
    in_memory = DataGenerator(load_images_into_memory=True, verbose=False)
    with pytest.warns(DataWarning, match="unreadable_image"):
        in_memory.parse_xml(**_call(messy_voc), verbose=False)
    assert "unreadable_image" not in in_memory.image_ids
    assert len(in_memory.images) == in_memory.dataset_size == len(in_memory.labels)
    assert all(image.shape == (40, 60, 3) for image in in_memory.images)


def test_messy_voc_bad_items_raise_lists_every_bad_file(messy_voc):
    with pytest.raises(DataValidationError) as error:
        DataGenerator().parse_xml(**_call(messy_voc), verbose=False, bad_items="raise")
    message = str(error.value)
    assert "3 item(s)" in message
    for name in ("malformed_xml.xml", "missing_annotation.xml", "missing_image.jpg"):
        assert name in message


def test_messy_voc_drop_policies(messy_voc):
    dataset = DataGenerator()
    with pytest.warns(DataWarning):
        dataset.parse_xml(
            **_call(messy_voc), verbose=False, out_of_image_boxes="drop", degenerate_boxes="drop"
        )
    labels = _labels_by_id(dataset)
    assert labels["box_outside"] == []
    assert labels["zero_size_box"] == [[2, 3, 3, 13, 23]]
    assert labels["zero_size_tag"] == []
    assert labels["good"] == [[1, 5, 6, 30, 35], [2, 31, 2, 59, 20]]
    keep = DataGenerator()
    with pytest.warns(DataWarning):
        keep.parse_xml(**_call(messy_voc), verbose=False, out_of_image_boxes="keep")
    assert _labels_by_id(keep)["box_outside"] == [[1, -4, 10, 70, 30]]


def test_unknown_class_raises_naming_file_and_class_or_is_dropped(tmp_path):
    (tmp_path / "A").mkdir()
    (tmp_path / "I").mkdir()
    for image_id, objects in (
        ("a", [("cat", 1, 1, 9, 9, 0), ("zebra", 2, 2, 8, 8, 0)]),
        ("b", [("dog", 1, 1, 9, 9, 0)]),
    ):
        (tmp_path / "A" / f"{image_id}.xml").write_text(_xml(objects))
        cv2.imwrite(str(tmp_path / "I" / f"{image_id}.jpg"), _rgb())
    (tmp_path / "set.txt").write_text("a\nb\n")
    call = {
        "images_dirs": [str(tmp_path / "I")],
        "image_set_filenames": [str(tmp_path / "set.txt")],
        "annotations_dirs": [str(tmp_path / "A")],
        "classes": CLASSES,
    }
    with pytest.raises(ValueError, match=r"a\.xml: object 1: <name> 'zebra'"):
        DataGenerator().parse_xml(**call, verbose=False)
    dataset = DataGenerator()
    with pytest.warns(DataWarning, match="zebra"):
        dataset.parse_xml(**call, verbose=False, unknown_classes="drop")
    assert _labels_by_id(dataset) == {"a": [[1, 1, 1, 9, 9]], "b": [[2, 1, 1, 9, 9]]}


def test_parse_xml_rejects_bad_policy_values(messy_voc):
    with pytest.raises(ValueError, match="out_of_image_boxes must be one of"):
        DataGenerator().parse_xml(**_call(messy_voc), out_of_image_boxes="fix")


def test_labels_output_format_reorders_columns(shared_data_dir):
    root = shared_data_dir / "raccoon"
    dataset = DataGenerator(labels_output_format=("xmin", "ymin", "xmax", "ymax", "class_id"))
    dataset.parse_xml(
        [str(root / "JPEGImages")],
        [str(root / "ImageSets/Main/test.txt")],
        [str(root / "Annotations")],
        ["background", "raccoon"],
        verbose=False,
    )
    assert dataset.labels[0].tolist() == [[3, 3, 260, 179, 1]]  # golden raccoon-5, reordered
    assert dataset.labels_format == {"xmin": 0, "ymin": 1, "xmax": 2, "ymax": 3, "class_id": 4}


# ---------------------------------------------------------------------------- CSV


def test_parse_csv_groups_sorts_and_reports(tmp_path):
    for name in ("b.jpg", "a.jpg", "c.jpg"):
        cv2.imwrite(str(tmp_path / name), _rgb())
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text(
        "frame,xmin,xmax,ymin,ymax,class_id\n"
        "b.jpg,10,20,5,15,2\n"
        "a.jpg,30,40,1,9,1\n"
        "b.jpg,1,8,2,6,1\n"
        "a.jpg,3,4,x,9,1\n"  # unparsable ymin
        "c.jpg,5,5,5,9,1\n"  # zero width
        "missing.jpg,1,2,1,2,1\n"
    )
    dataset = DataGenerator()
    with pytest.warns(DataWarning) as record:
        images, filenames, labels, image_ids = dataset.parse_csv(
            str(tmp_path),
            str(csv_file),
            ["image_name", "xmin", "xmax", "ymin", "ymax", "class_id"],
            ret=True,
            verbose=False,
        )
    assert images is None
    assert image_ids == ["a", "b", "c"]  # sorted by file name; missing.jpg dropped
    assert [os.path.basename(f) for f in filenames] == ["a.jpg", "b.jpg", "c.jpg"]
    # rows of an image sorted by (class_id, xmin, ...) as in the original
    assert [y.tolist() for y in labels] == [
        [[1, 30, 1, 40, 9]],
        [[1, 1, 2, 8, 6], [2, 10, 5, 20, 15]],
        [[1, 5, 5, 5, 9]],
    ]
    message = str(record[0].message)
    assert "labels.csv:5" in message and "ymin = 'x'" in message
    assert "labels.csv:6" in message and "missing.jpg" in message

    only_two = DataGenerator()
    with pytest.warns(DataWarning):
        only_two.parse_csv(
            str(tmp_path),
            str(csv_file),
            ["image_name", "xmin", "xmax", "ymin", "ymax", "class_id"],
            include_classes=[2],
            verbose=False,
        )
    assert only_two.image_ids == ["b"] and only_two.labels[0].tolist() == [[2, 10, 5, 20, 15]]


def test_parse_csv_random_sample_is_seeded(tmp_path):
    names = [f"{i:03d}.jpg" for i in range(40)]
    rows = "".join(f"{n},1,5,1,5,1\n" for n in names)
    (tmp_path / "l.csv").write_text("image_name,xmin,xmax,ymin,ymax,class_id\n" + rows)
    for n in names:
        (tmp_path / n).write_bytes(b"")  # existence is all parse_csv checks
    fmt = ["image_name", "xmin", "xmax", "ymin", "ymax", "class_id"]

    def sample(seed):
        d = DataGenerator()
        d.parse_csv(
            str(tmp_path), str(tmp_path / "l.csv"), fmt, random_sample=0.5, seed=seed, verbose=False
        )
        return d.image_ids

    assert sample(3) == sample(3)
    assert sample(3) != sample(4)
    assert 8 <= len(sample(3)) <= 32  # about half of 40


# ---------------------------------------------------------------------------- COCO JSON


def test_parse_json_matches_parse_xml_on_voc_sample(shared_data_dir):
    root = shared_data_dir / "voc2012_sample"
    coco = DataGenerator()
    coco.parse_json(
        [str(root / "JPEGImages")],
        [str(root / "coco/instances.json")],
        ground_truth_available=True,
        verbose=False,
    )
    voc = DataGenerator()
    voc.parse_xml(
        [str(root / "JPEGImages")],
        [str(root / "ImageSets/Main/test.txt")],
        [str(root / "Annotations")],
        ["background"] + (root / "voc.names").read_text().split(),
        verbose=False,
    )
    assert coco.dataset_size == 100 and len(coco.data_report) == 0
    assert coco.classes_to_names[0] == "background"
    assert all(isinstance(i, int) for i in coco.image_ids)
    voc_by_file = {os.path.basename(f): y for f, y in zip(voc.filenames, voc.labels)}
    for filename, labels in zip(coco.filenames, coco.labels):
        # same boxes, class names through the two maps (COCO order may differ from XML order)
        got = sorted(
            (coco.classes_to_names[int(r[0])], *map(float, r[1:])) for r in labels.tolist()
        )
        want = sorted(
            (voc.classes[int(r[0])], *map(float, r[1:]))
            for r in voc_by_file[os.path.basename(filename)].tolist()
        )
        assert got == want, filename
    assert sum(len(y) for y in coco.labels) == 273


def test_parse_json_crowd_boxes_and_category_mapping(tmp_path):
    cv2.imwrite(str(tmp_path / "x.jpg"), _rgb())
    annotations = {
        "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}],
        "images": [{"id": 11, "file_name": "x.jpg", "width": 60, "height": 40}],
        "annotations": [
            {"id": 1, "image_id": 11, "category_id": 3, "bbox": [1.5, 2, 10, 5], "iscrowd": 0},
            {"id": 2, "image_id": 11, "category_id": 7, "bbox": [0, 0, 30, 20], "iscrowd": 1},
            {"id": 3, "image_id": 11, "category_id": 99, "bbox": [0, 0, 3, 3], "iscrowd": 0},
        ],
    }
    path = tmp_path / "a.json"
    path.write_text(json.dumps(annotations))

    def parse(**kwargs):
        d = DataGenerator()
        with pytest.warns(DataWarning, match="unknown category_id 99"):
            d.parse_json(
                [str(tmp_path)], [str(path)], ground_truth_available=True, verbose=False, **kwargs
            )
        return d

    default = parse()
    # categories in file order -> 1, 2: cat (7) -> 1, dog (3) -> 2
    assert default.cats_to_classes == {7: 1, 3: 2} and default.classes_to_cats == {1: 7, 2: 3}
    assert default.labels[0].tolist() == [[2, 1.5, 2, 11.5, 7], [1, 0, 0, 30, 20]]
    assert default.eval_neutral == [[False, True]]
    assert parse(crowd_boxes="keep").eval_neutral == [[False, False]]
    assert parse(crowd_boxes="drop").labels[0].tolist() == [[2, 1.5, 2, 11.5, 7]]
    assert parse(include_classes=[7]).labels[0].tolist() == [[1, 0, 0, 30, 20]]


def test_parse_xml_takes_the_originals_positional_arguments(messy_voc):
    # Code written for the original passes everything up to `verbose` positionally.
    call = _call(messy_voc)
    by_keyword = DataGenerator()
    with pytest.warns(DataWarning):
        expected = by_keyword.parse_xml(
            **call, include_classes=[2], exclude_difficult=True, ret=True, verbose=False
        )
    by_position = DataGenerator()
    with pytest.warns(DataWarning):
        got = by_position.parse_xml(
            call["images_dirs"],
            call["image_set_filenames"],
            call["annotations_dirs"],
            call["classes"],
            [2],  # include_classes
            False,  # exclude_truncated
            True,  # exclude_difficult
            True,  # ret
            False,  # verbose
        )
    assert got[1] == expected[1] and got[3] == expected[3] and got[4] == expected[4]
    assert [y.tolist() for y in got[2]] == [y.tolist() for y in expected[2]]
    assert all(row[0] == 2 for y in got[2] for row in y.tolist())  # include_classes applied
    # exclude_difficult applied: the difficult dog of "good" is gone (its cat is not included)
    assert not any(map(any, got[4]))
    assert dict(zip(got[3], got[2]))["good"].shape == (0, 5)
