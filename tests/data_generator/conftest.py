"""Fixtures for the transform tests (ops and chains): the golden cases of ``transforms.json``;
and `parse_voc`, a quiet `DataGenerator` of one split of a VOC-layout folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from data_generator import (
    object_detection_2d_geometric_ops,
    object_detection_2d_image_boxes_validation_utils,
    object_detection_2d_patch_sampling_ops,
    object_detection_2d_photometric_ops,
)

_SHARED = Path(
    os.environ.get("SSD_KERAS_SHARED", Path(__file__).resolve().parents[2].parent / "shared")
)
_TRANSFORM_MODULES = (
    object_detection_2d_geometric_ops,
    object_detection_2d_photometric_ops,
    object_detection_2d_patch_sampling_ops,
    object_detection_2d_image_boxes_validation_utils,
)


def _golden_transform_cases() -> list[dict]:
    path = _SHARED / "golden" / "transforms.json"
    if not path.exists():
        return []
    return json.loads(path.read_text())["cases"]


def pytest_generate_tests(metafunc):
    """Parametrises ``transform_case`` with the golden cases whose op the test module lists in
    ``GOLDEN_OPS`` (an empty set of cases is reported as skipped where the golden is absent)."""
    if "transform_case" in metafunc.fixturenames:
        wanted = metafunc.module.GOLDEN_OPS
        cases = [case for case in _golden_transform_cases() if case["spec"]["name"] in wanted]
        metafunc.parametrize("transform_case", cases, ids=[case["name"] for case in cases])


def build_transform(spec: dict):
    """Builds ``{"name": class name, "kwargs": {...}}``; nested specs (a box filter) likewise."""
    kwargs = {}
    for key, value in spec["kwargs"].items():
        if isinstance(value, dict) and "name" in value:
            value = build_transform(value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    for module in _TRANSFORM_MODULES:
        if hasattr(module, spec["name"]):
            return getattr(module, spec["name"])(**kwargs)
    raise LookupError(f"no transform named {spec['name']!r}")


@pytest.fixture(scope="session")
def transforms_golden(golden):
    """``transforms.json``/``.npz`` with the named inputs of the cases built as the README says."""
    fixture = golden("transforms")
    image = fixture.npz["input_image"]
    inputs = {
        "input_image": image,
        "gray_2d": image[:, :, 0],
        "gray_1ch": image[:, :, :1],
        "rgba": np.concatenate([image, image[:, :, 1:2]], axis=-1),
        "hsv_of_input": fixture.npz["convert_color_rgb2hsv"],
    }
    return {"meta": fixture.meta, "npz": fixture.npz, "inputs": inputs}


@pytest.fixture(scope="session")
def make_transform():
    return build_transform


def parse_voc_split(info: dict, split: str = "train", **kwargs):
    """A `DataGenerator` of the ``split`` of the Pascal VOC folder that ``info`` describes (as
    `make_synthetic_dataset` returns it), parsed quietly; ``kwargs`` go to ``parse_xml``."""
    from data_generator.object_detection_2d_data_generator import DataGenerator

    dataset = DataGenerator()
    dataset.parse_xml(
        images_dirs=[info["images_dir"]],
        image_set_filenames=[info["image_sets"][split]],
        annotations_dirs=[info["annotations_dir"]],
        classes=info["classes"],
        verbose=False,
        **kwargs,
    )
    return dataset


@pytest.fixture(scope="session")
def parse_voc():
    """`parse_voc_split`: ``parse_voc(info)``, ``parse_voc(info, "train", check_images=True)``."""
    return parse_voc_split
