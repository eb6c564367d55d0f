"""The synthetic shapes dataset: deterministic, valid Pascal VOC, tight boxes, varied content."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from data_generator.synthetic_shapes import (
    SHAPE_CLASSES,
    draw_synthetic_image,
    main,
    make_synthetic_dataset,
)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    info = make_synthetic_dataset(root, n_train=40, n_test=10, image_size=(96, 128), seed=0)
    return root, info


def test_same_seed_same_files_other_seed_other_files(shapes, tmp_path):
    root, _ = shapes
    again = make_synthetic_dataset(tmp_path / "a", 40, 10, (96, 128), seed=0)
    assert _digest(Path(again["root"])) == _digest(root)
    other = make_synthetic_dataset(tmp_path / "b", 40, 10, (96, 128), seed=1)
    assert _digest(Path(other["root"])) != _digest(root)


def test_layout_and_parse_xml_without_any_bad_item(shapes, parse_voc):
    root, info = shapes
    assert (root / "classes.txt").read_text().split() == list(SHAPE_CLASSES)
    assert set(info["image_sets"]) == {"train", "test", "trainval"}
    dataset = parse_voc(info, check_images=True)
    assert dataset.dataset_size == 40 and len(dataset.data_report) == 0
    boxes = np.concatenate([y for y in dataset.labels if len(y)])
    assert len(boxes) == info["n_objects"]["train"]
    # every class occurs, sizes vary, all boxes are inside the 128 x 96 image and non-empty
    assert set(boxes[:, 0]) == set(range(1, len(SHAPE_CLASSES)))
    widths, heights = boxes[:, 3] - boxes[:, 1], boxes[:, 4] - boxes[:, 2]
    assert widths.min() > 0 and heights.min() > 0 and widths.max() >= 3 * widths.min()
    assert boxes[:, 1].min() >= 0 and boxes[:, 3].max() <= 128 and boxes[:, 4].max() <= 96
    image = dataset._load_image(0)
    assert image.shape == (96, 128, 3) and image.dtype == np.uint8


def test_some_objects_are_difficult_or_truncated_and_some_images_empty(tmp_path, parse_voc):
    info = make_synthetic_dataset(tmp_path, n_train=150, n_test=0, image_size=(64, 64), seed=3)
    dataset = parse_voc(info)
    assert sum(map(sum, dataset.eval_neutral)) > 0  # difficult flags
    assert sum(len(y) == 0 for y in dataset.labels) > 0  # images without objects
    texts = [p.read_text() for p in Path(info["annotations_dir"]).glob("*.xml")]
    assert any("<truncated>1</truncated>" in t for t in texts)


@pytest.mark.parametrize("seed", range(8))
def test_box_is_the_tight_extent_of_the_drawn_shape(seed):
    """With one object, the pixels of its exact colour span exactly its box."""
    rng = np.random.default_rng(seed)
    image, objects = draw_synthetic_image(
        rng, (80, 100), max_objects=1, empty_probability=0.0, truncated_probability=0.0
    )
    assert len(objects) == 1
    xmin, ymin, xmax, ymax = objects[0]["box"]
    colour = image[(ymin + ymax) // 2, (xmin + xmax) // 2]  # the centre is inside every shape
    rows, cols = np.nonzero(np.all(image == colour, axis=2))
    assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (xmin, ymin, xmax, ymax)
    assert objects[0]["name"] == SHAPE_CLASSES[objects[0]["class_id"]]


def test_background_is_textured_not_flat():
    image, _ = draw_synthetic_image(np.random.default_rng(0), (64, 64), empty_probability=1.0)
    assert image.std(axis=(0, 1)).min() > 3


def test_command_line(tmp_path, capsys):
    main([str(tmp_path), "--n-train", "3", "--n-test", "2", "--image-size", "40", "48"])
    assert "wrote 3 train / 2 test images" in capsys.readouterr().out
    assert len(list((tmp_path / "JPEGImages").glob("*.jpg"))) == 5
    with pytest.raises(ValueError, match="image_size"):
        make_synthetic_dataset(tmp_path, 1, 1, (16, 16))


def test_module_runs_as_a_script_without_warnings(tmp_path, fresh_python):
    """`python -m data_generator.synthetic_shapes` must not be pre-imported by the package."""
    fresh_python(
        *("-W", "error::RuntimeWarning", "-m", "data_generator.synthetic_shapes", str(tmp_path)),
        *("--n-train", "2", "--n-test", "1", "--image-size", "40", "48"),
    )
    assert len((tmp_path / "ImageSets" / "Main" / "train.txt").read_text().split()) == 2
