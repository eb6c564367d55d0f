"""Tests of BoundGenerator, BoxFilter and ImageValidator (golden cases and hand-checked ones)."""

import numpy as np
import pytest

from data_generator.object_detection_2d_image_boxes_validation_utils import (
    BoundGenerator,
    BoxFilter,
    ImageValidator,
)
from data_generator.object_detection_2d_misc_utils import apply_inverse_transforms


def test_box_filter_golden(transforms_golden):
    spec = transforms_golden["meta"]["box_filter"]
    labels = np.array(spec["labels"])
    assert len(spec["cases"]) == 7
    for case in spec["cases"]:
        kept = BoxFilter(**case["kwargs"])(
            labels, image_height=spec["image_height"], image_width=spec["image_width"]
        )
        np.testing.assert_array_equal(kept, case["kept_labels"], err_msg=case["name"])


def test_image_validator_golden(transforms_golden):
    meta = transforms_golden["meta"]
    spec = meta["image_validator"]
    label_sets = {"bf_labels": meta["box_filter"]["labels"], "main_labels": meta["labels"]}
    assert len(spec["cases"]) == 18
    for case in spec["cases"]:
        validator = ImageValidator(
            overlap_criterion=case["overlap_criterion"],
            bounds=tuple(case["bounds"]),
            n_boxes_min=case["n_boxes_min"],
            border_pixels=case["border_pixels"],
        )
        valid = validator(
            np.array(label_sets[case["labels"]]), spec["image_height"], spec["image_width"]
        )
        assert valid is case["valid"], case


def test_box_filter_hand_checked():
    # Image 100 x 100. Box A [0, 0, 50, 100]: IoU with [0, 0, 100, 100] = 0.5. Box B [90, 90, 130,
    # 130]: centre (110, 110) outside; clipped to [90, 90, 99, 99] it keeps 81 / 1600 of its area.
    labels = np.array([[1, 0, 0, 50, 100], [2, 90, 90, 130, 130]])

    def kept(**kwargs):
        box_filter = BoxFilter(check_min_area=False, check_degenerate=False, **kwargs)
        return box_filter(labels, 100, 100)[:, 0].tolist()

    assert kept(overlap_criterion="center_point") == [1]
    assert kept(overlap_criterion="iou", overlap_bounds=(0.5, 1.0)) == []  # lower bound is strict
    assert kept(overlap_criterion="iou", overlap_bounds=(0.49, 1.0)) == [1]
    assert kept(overlap_criterion="area", overlap_bounds=(0.05, 1.0)) == [1, 2]
    assert kept(overlap_criterion="area", overlap_bounds=(0.06, 1.0)) == [1]
    # 'include': areas count border pixels, so B keeps 10 * 10 / (41 * 41) = 0.0595.
    assert kept(overlap_criterion="area", overlap_bounds=(0.059, 1.0), border_pixels="include") == [
        1,
        2,
    ]


def test_box_filter_edge_cases():
    empty = np.zeros((0, 5))
    assert BoxFilter()(empty, 10, 10).shape == (0, 5)
    with pytest.raises(ValueError, match="image_height"):
        BoxFilter()(np.array([[1, 0, 0, 5, 5]]))
    with pytest.raises(ValueError, match="overlap_criterion"):
        BoxFilter(overlap_criterion="centre")
    with pytest.raises(ValueError, match="overlap_bounds"):
        BoxFilter(overlap_bounds=(0.9, 0.1))
    with pytest.raises(ValueError, match="n_boxes_min"):
        ImageValidator(n_boxes_min=0)


def test_bound_generator():
    generator = BoundGenerator(((0.1, None), (None, 0.5), (None, None)), rng=3)
    draws = [tuple(generator()) for _ in range(200)]
    assert set(draws) == {(0.1, 1.0), (0.0, 0.5), (0.0, 1.0)}
    again = BoundGenerator(((0.1, None), (None, 0.5), (None, None)), rng=3)
    assert draws == [tuple(again()) for _ in range(200)]
    weighted = BoundGenerator(((0.1, None), (0.3, None)), weights=(0.0, 1.0), rng=0)
    assert all(weighted() == [0.3, 1.0] for _ in range(20))
    # BoxFilter draws new bounds from a BoundGenerator at every call.
    box_filter = BoxFilter(
        check_min_area=False,
        overlap_criterion="iou",
        overlap_bounds=weighted,
        check_degenerate=False,
    )
    assert box_filter(np.array([[1, 0, 0, 50, 100]]), 100, 100).shape == (1, 5)
    with pytest.raises(ValueError, match="weights"):
        BoundGenerator(((0.1, None),), weights=(0.5, 0.5))
    with pytest.raises(ValueError, match="lower <= upper"):
        BoundGenerator(((0.9, 0.1),))


def test_apply_inverse_transforms():
    predictions = np.array([[1, 0.9, 10.0, 20.0, 30.0, 40.0]])

    def shift(p):
        p = p.copy()
        p[:, 2:] += 5
        return p

    def double(p):
        p = p.copy()
        p[:, 2:] *= 2
        return p

    # Applied in list order: (x + 5) * 2; None entries are skipped; inputs untouched.
    out = apply_inverse_transforms(predictions, [shift, None, double])
    np.testing.assert_allclose(out, [[1, 0.9, 30, 50, 70, 90]])
    np.testing.assert_allclose(predictions, [[1, 0.9, 10, 20, 30, 40]])
    batch = apply_inverse_transforms([predictions, np.zeros((0, 6))], [[double], [double]])
    np.testing.assert_allclose(batch[0], [[1, 0.9, 20, 40, 60, 80]])
    assert batch[1].shape == (0, 6)
    with pytest.raises(ValueError, match="batch items"):
        apply_inverse_transforms([predictions], [[double], [double]])


def test_apply_inverse_transforms_ndarray_batch_keeps_the_original_contract():
    # Through this import path a 2-D array is one image (above) and a (batch, k, 6) array is a
    # batch, as in the original ssd_keras: one inverter list per item, an array back.
    def shift(p):
        p = p.copy()
        p[:, 2:] += 5
        return p

    batch = np.array([[[1, 0.9, 10, 20, 30, 40]], [[2, 0.8, 0, 0, 10, 10]]], dtype=np.float32)
    out = apply_inverse_transforms(batch, [[shift], [None]])
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out, [[[1, 0.9, 15, 25, 35, 45]], [[2, 0.8, 0, 0, 10, 10]]])
    np.testing.assert_array_equal(batch[0, 0, 2:], [10, 20, 30, 40])  # input untouched
    with pytest.raises(ValueError, match="batch items"):
        apply_inverse_transforms(batch, [[shift]])


def test_transform_modules_import_no_keras(imports_leave_out):
    # data_generator is numpy + OpenCV: importing the transforms and chains must not pull in Keras.
    modules = [
        "data_generator.object_detection_2d_geometric_ops",
        "data_generator.object_detection_2d_photometric_ops",
        "data_generator.object_detection_2d_patch_sampling_ops",
        "data_generator.object_detection_2d_image_boxes_validation_utils",
        "data_generator.object_detection_2d_misc_utils",
        "data_generator.data_augmentation_chain_original_ssd",
        "data_generator.data_augmentation_chain_constant_input_size",
        "data_generator.data_augmentation_chain_variable_input_size",
        "data_generator.data_augmentation_chain_satellite",
    ]
    imports_leave_out(modules)
