"""Tests of bounding_box_utils: golden values, hand-checked cases and properties."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import loop_references as reference
from bounding_box_utils import convert_coordinates, intersection_area, iou
from bounding_box_utils.bounding_box_utils import COORDS

BORDERS = ("half", "include", "exclude")


def random_corners(rng, n, low=0.0, high=300.0, min_side=2.0):
    """``n`` random boxes (xmin, ymin, xmax, ymax) with sides of at least ``min_side``."""
    xy = rng.uniform(low, high - min_side, size=(n, 2))
    wh = rng.uniform(min_side, high / 2, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


def from_corners(boxes, coords, border_pixels="half"):
    if coords == "corners":
        return boxes.copy()
    return convert_coordinates(boxes, 0, f"corners2{coords}", border_pixels=border_pixels)


# ---------------------------------------------------------------- golden values


def test_conversions_match_golden(golden):
    z = golden("box_utils").npz
    boxes = z["boxes1_corners"]
    np.testing.assert_allclose(
        convert_coordinates(boxes, 0, "corners2centroids"), z["corners2centroids"], atol=1e-6
    )
    np.testing.assert_allclose(
        convert_coordinates(boxes, 0, "corners2minmax"), z["corners2minmax"], atol=1e-6
    )
    np.testing.assert_allclose(
        convert_coordinates(z["corners2centroids"], 0, "centroids2corners"),
        z["centroids2corners"],
        atol=1e-5,
    )


def test_iou_and_intersection_half_match_golden(golden):
    z = golden("box_utils").npz
    b1, b2 = z["boxes1_corners"], z["boxes2_corners"]
    np.testing.assert_allclose(iou(b1, b2, coords="corners"), z["iou_outer_half"], atol=1e-6)
    np.testing.assert_allclose(
        iou(b1[:5], b2, coords="corners", mode="element-wise"), z["iou_elementwise_half"], atol=1e-6
    )
    np.testing.assert_allclose(
        intersection_area(b1, b2, coords="corners"), z["intersection_outer_half"], atol=1e-3
    )


def test_iou_include_is_the_corrected_value_not_the_original(golden):
    """Bug 1 of the original: its iou() left border_pixels out of the intersection."""
    z = golden("box_utils").npz
    b1, b2 = z["boxes1_int"], z["boxes2_int"]
    np.testing.assert_allclose(
        intersection_area(b1, b2, coords="corners", border_pixels="include"),
        z["intersection_outer_include"],
        atol=1e-6,
    )
    ours = iou(b1, b2, coords="corners", border_pixels="include")
    np.testing.assert_allclose(ours, z["iou_outer_include_CORRECT"], atol=1e-6)
    overlapping = z["intersection_outer_include"] > 0
    assert not np.allclose(ours[overlapping], z["iou_outer_include_ORIGINAL_BUGGY"][overlapping])


# ---------------------------------------------------------------- hand-checked cases


def test_hand_checked_iou_values():
    # [0,0,10,10] vs [5,0,15,10]: intersection 5*10 = 50, union 100 + 100 - 50 = 150 -> 1/3.
    assert iou([0, 0, 10, 10], [5, 0, 15, 10], coords="corners")[0, 0] == pytest.approx(1 / 3)
    # With 'include' both are 11x11 pixels and share 6x11: 66 / (121 + 121 - 66) = 66/176.
    got = iou([0, 0, 10, 10], [5, 0, 15, 10], coords="corners", border_pixels="include")
    assert got[0, 0] == pytest.approx(66 / 176)
    # Disjoint boxes, and boxes that only touch, have IoU 0 under 'half'.
    assert iou([0, 0, 10, 10], [20, 20, 30, 30], coords="corners")[0, 0] == 0.0
    assert iou([0, 0, 10, 10], [10, 0, 20, 10], coords="corners")[0, 0] == 0.0
    # ...but touching boxes share one pixel column under 'include': 11 / (121 + 121 - 11).
    touching = iou([0, 0, 10, 10], [10, 0, 20, 10], coords="corners", border_pixels="include")
    assert touching[0, 0] == pytest.approx(11 / 231)
    # A 4x4 box centred inside an 8x8 box: 16 / 64.
    assert iou([4, 4, 8, 8], [4, 4, 4, 4], coords="centroids")[0, 0] == pytest.approx(0.25)


def test_hand_checked_conversions():
    # corners (10, 20, 30, 60): centre (20, 40), size 20 x 40 ('half'), 21 x 41 ('include').
    box = np.array([[10, 20, 30, 60]])
    np.testing.assert_array_equal(
        convert_coordinates(box, 0, "corners2centroids"), [[20, 40, 20, 40]]
    )
    np.testing.assert_array_equal(
        convert_coordinates(box, 0, "corners2centroids", border_pixels="include"),
        [[20, 40, 21, 41]],
    )
    np.testing.assert_array_equal(convert_coordinates(box, 0, "corners2minmax"), [[10, 30, 20, 60]])
    # Values outside the four box columns are left alone.
    row = np.array([7.0, 10, 20, 30, 60, 0.5])
    np.testing.assert_array_equal(
        convert_coordinates(row, 1, "corners2centroids"), [7, 20, 40, 20, 40, 0.5]
    )


def test_convert_coordinates_returns_a_new_array():
    box = np.array([[10.0, 20.0, 30.0, 60.0]])
    convert_coordinates(box, 0, "corners2centroids")
    np.testing.assert_array_equal(box, [[10, 20, 30, 60]])


def test_float32_stays_float32_and_ints_become_float64():
    assert (
        convert_coordinates(np.zeros((2, 4), np.float32), 0, "corners2minmax").dtype == np.float32
    )
    assert convert_coordinates(np.zeros((2, 4), np.int32), 0, "corners2minmax").dtype == np.float64


# ---------------------------------------------------------------- properties


@pytest.mark.parametrize("border_pixels", BORDERS)
@pytest.mark.parametrize("source,target", list(itertools.permutations(COORDS, 2)))
def test_every_conversion_pair_round_trips(source, target, border_pixels):
    """Bug 2 of the original: centroids -> corners/minmax did not undo the border term."""
    rng = np.random.default_rng(0)
    boxes = from_corners(random_corners(rng, 50), source, border_pixels)
    there = convert_coordinates(boxes, 0, f"{source}2{target}", border_pixels=border_pixels)
    back = convert_coordinates(there, 0, f"{target}2{source}", border_pixels=border_pixels)
    np.testing.assert_allclose(back, boxes, rtol=0, atol=1e-9)


@pytest.mark.parametrize("border_pixels", BORDERS)
def test_conversions_agree_through_any_route(border_pixels):
    """minmax -> centroids directly equals minmax -> corners -> centroids."""
    rng = np.random.default_rng(1)
    minmax = from_corners(random_corners(rng, 30), "minmax")
    direct = convert_coordinates(minmax, 0, "minmax2centroids", border_pixels)
    via = convert_coordinates(
        convert_coordinates(minmax, 0, "minmax2corners", border_pixels),
        0,
        "corners2centroids",
        border_pixels,
    )
    np.testing.assert_allclose(direct, via, atol=1e-12)


box_strategy = st.tuples(
    st.floats(0, 500), st.floats(0, 500), st.floats(3, 200), st.floats(3, 200)
).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(box_strategy, min_size=1, max_size=6), st.lists(box_strategy, min_size=1, max_size=6)
)
def test_iou_is_symmetric_and_bounded(boxes1, boxes2):
    for border_pixels in BORDERS:
        ab = iou(boxes1, boxes2, coords="corners", border_pixels=border_pixels)
        ba = iou(boxes2, boxes1, coords="corners", border_pixels=border_pixels)
        np.testing.assert_allclose(ab, ba.T, atol=1e-12)
        assert np.all((ab >= 0) & (ab <= 1 + 1e-12))


@pytest.mark.parametrize("coords", COORDS)
@pytest.mark.parametrize("border_pixels", BORDERS)
def test_iou_of_a_box_with_itself_is_one(coords, border_pixels):
    rng = np.random.default_rng(2)
    boxes = from_corners(np.round(random_corners(rng, 40)), coords, border_pixels)
    np.testing.assert_allclose(
        iou(boxes, boxes, coords=coords, mode="element-wise", border_pixels=border_pixels),
        1.0,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        np.diag(iou(boxes, boxes, coords=coords, border_pixels=border_pixels)), 1.0, atol=1e-12
    )


@pytest.mark.parametrize("border_pixels", BORDERS)
def test_element_wise_is_the_diagonal_of_the_outer_product(border_pixels):
    rng = np.random.default_rng(3)
    b1, b2 = random_corners(rng, 25), random_corners(rng, 25)
    outer = iou(b1, b2, coords="corners", border_pixels=border_pixels)
    element = iou(b1, b2, coords="corners", mode="element-wise", border_pixels=border_pixels)
    np.testing.assert_allclose(element, np.diag(outer), atol=1e-12)
    inter_outer = intersection_area(b1, b2, coords="corners", border_pixels=border_pixels)
    inter_element = intersection_area(
        b1, b2, coords="corners", mode="element-wise", border_pixels=border_pixels
    )
    np.testing.assert_allclose(inter_element, np.diag(inter_outer), atol=1e-9)


@pytest.mark.parametrize("coords", COORDS)
def test_iou_does_not_depend_on_the_input_format(coords):
    rng = np.random.default_rng(4)
    b1, b2 = random_corners(rng, 10), random_corners(rng, 8)
    expected = iou(b1, b2, coords="corners", border_pixels="include")
    got = iou(
        from_corners(b1, coords, "include"),
        from_corners(b2, coords, "include"),
        coords=coords,
        border_pixels="include",
    )
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_iou_matches_a_brute_force_loop():
    rng = np.random.default_rng(5)
    b1, b2 = np.round(random_corners(rng, 6)), np.round(random_corners(rng, 7))
    got = iou(b1, b2, coords="corners", border_pixels="include")
    for i, a in enumerate(b1):
        for j, b in enumerate(b2):
            assert got[i, j] == pytest.approx(reference.pair_iou(a, b, border_pixels="include"))


def test_zero_area_boxes_give_zero_not_nan():
    got = iou([[5, 5, 5, 5]], [[5, 5, 5, 5], [0, 0, 10, 10]], coords="corners")
    np.testing.assert_array_equal(got, [[0.0, 0.0]])


CONVERSIONS = [f"{a}2{b}" for a, b in itertools.permutations(COORDS, 2)]


@pytest.mark.parametrize("conversion", CONVERSIONS)
@pytest.mark.parametrize("border_pixels", BORDERS)
@pytest.mark.parametrize("width", [4, 6, 9])
def test_negative_start_index_counts_from_the_end(conversion, border_pixels, width):
    # The original indexes start_index, start_index + 1, ..., + 3, so -4 is the last four columns
    # (its decode_detections calls it with -4) and the other columns are copied unchanged.
    rng = np.random.default_rng(8)
    boxes = from_corners(random_corners(rng, 5), conversion.split("2")[0], border_pixels)
    tensor = np.concatenate([rng.uniform(size=(5, width - 4)), boxes], axis=1)
    expected = convert_coordinates(tensor, width - 4, conversion, border_pixels=border_pixels)
    got = convert_coordinates(tensor, -4, conversion, border_pixels=border_pixels)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got[:, : width - 4], tensor[:, : width - 4])
    # And on a 3-D tensor (batch, boxes, values), as the decoder has it.
    batch = np.stack([tensor, tensor[::-1]])
    np.testing.assert_array_equal(
        convert_coordinates(batch, -4, conversion, border_pixels=border_pixels),
        np.stack([expected, expected[::-1]]),
    )


@pytest.mark.parametrize("start_index", [-1, -2, -3])
def test_start_index_that_wraps_around_picks_the_original_columns(start_index):
    # The original accepted these too: -2 reads the columns -2, -1, 0, 1 (numpy indices).
    tensor = np.array([[10.0, 20.0, 30.0, 60.0, 7.0]])
    columns = [start_index + k for k in range(4)]
    got = convert_coordinates(tensor, start_index, "corners2centroids")
    xmin, ymin, xmax, ymax = tensor[0, columns]
    np.testing.assert_array_equal(
        got[0, columns], [(xmin + xmax) / 2, (ymin + ymax) / 2, xmax - xmin, ymax - ymin]
    )
    untouched = [c for c in range(5) if c not in {k % 5 for k in columns}]
    np.testing.assert_array_equal(got[0, untouched], tensor[0, untouched])


@pytest.mark.parametrize("start_index", [-5, 1, 5])
def test_start_index_outside_the_last_axis_raises(start_index):
    with pytest.raises(ValueError, match="start_index"):
        convert_coordinates(np.zeros((2, 4)), start_index, "corners2centroids")


@pytest.mark.parametrize("coords", COORDS)
@pytest.mark.parametrize("border_pixels", BORDERS)
@pytest.mark.parametrize("single_shape", [(4,), (1, 4)])
def test_element_wise_broadcasts_a_single_box_on_either_side(coords, border_pixels, single_shape):
    # The original turns a (4,) box into (1, 4) and lets numpy broadcast it against (n, 4).
    rng = np.random.default_rng(9)
    many = from_corners(np.round(random_corners(rng, 7)), coords, border_pixels)
    one = from_corners(np.round(random_corners(rng, 1)), coords, border_pixels)
    expected = iou(many, np.repeat(one, 7, axis=0), coords, "element-wise", border_pixels)
    single = one.reshape(single_shape)
    left = iou(single, many, coords=coords, mode="element-wise", border_pixels=border_pixels)
    right = iou(many, single, coords=coords, mode="element-wise", border_pixels=border_pixels)
    assert left.shape == right.shape == (7,)
    np.testing.assert_array_equal(right, expected)
    np.testing.assert_allclose(left, expected, atol=1e-15)
    # Each entry is the IoU of that box with the single one (the outer product's column).
    np.testing.assert_allclose(
        right, iou(many, one, coords=coords, border_pixels=border_pixels)[:, 0], atol=1e-15
    )
    areas = intersection_area(single, many, coords, "element-wise", border_pixels)
    np.testing.assert_allclose(
        areas, intersection_area(many, one, coords, border_pixels=border_pixels)[:, 0]
    )


def test_element_wise_iou_of_one_box_with_several_by_hand():
    # [0, 0, 10, 10] against itself (1), a half-overlapping box (50 / 150) and a far box (0).
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    got = iou(np.array([0, 0, 10, 10]), boxes, coords="corners", mode="element-wise")
    np.testing.assert_allclose(got, [1.0, 1 / 3, 0.0])


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call,argument",
    [
        (
            lambda: convert_coordinates(np.zeros((1, 4)), 0, "corners2centroids", "inside"),
            "border_pixels",
        ),
        (lambda: convert_coordinates(np.zeros((1, 4)), 0, "corners2polar"), "conversion"),
        (lambda: convert_coordinates(np.zeros((1, 4)), 2, "corners2minmax"), "start_index"),
        (lambda: iou(np.zeros((1, 4)), np.zeros((1, 4)), coords="xywh"), "coords"),
        (lambda: iou(np.zeros((1, 4)), np.zeros((1, 4)), border_pixels="all"), "border_pixels"),
        (lambda: iou(np.zeros((1, 4)), np.zeros((1, 4)), mode="pairwise"), "mode"),
        (lambda: iou(np.zeros((2, 4)), np.zeros((3, 4)), mode="element-wise"), "element-wise"),
        (lambda: iou(np.zeros((2, 5)), np.zeros((3, 4))), "boxes1"),
        (lambda: intersection_area(np.zeros((1, 4)), np.zeros((1, 4)), coords="x"), "coords"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()


def test_numpy_packages_do_not_import_keras(imports_leave_out):
    imports_leave_out(["bounding_box_utils", "ssd_encoder_decoder"])
