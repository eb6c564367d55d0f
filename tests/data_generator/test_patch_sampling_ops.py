"""Tests of the patch-sampling ops: golden CropPad cases, hand-checked crops/pads, properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bounding_box_utils.bounding_box_utils import iou
from data_generator.object_detection_2d_image_boxes_validation_utils import (
    BoundGenerator,
    BoxFilter,
    ImageValidator,
)
from data_generator.object_detection_2d_patch_sampling_ops import (
    Crop,
    CropPad,
    Pad,
    PatchCoordinateGenerator,
    RandomMaxCropFixedAR,
    RandomPadFixedAR,
    RandomPatch,
    RandomPatchInf,
)

GOLDEN_OPS = {"CropPad"}
LABELS = np.array([[1, 20, 15, 120, 150], [2, 150, 10, 290, 90], [3, 250, 120, 299, 199]])


def random_image(seed=0, height=200, width=300):
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def predictions_from(labels, conf=0.5):
    return np.insert(np.asarray(labels, dtype=np.float64), 1, conf, axis=1)


def test_golden_case(transform_case, transforms_golden, make_transform):
    case = transform_case
    op = make_transform(case["spec"])
    image = transforms_golden["inputs"][case["input"]]
    out, labels, inverter = op(image, np.array(case["input_labels"]), return_inverter=True)
    np.testing.assert_array_equal(out, transforms_golden["npz"][case["output_image_key"]])
    np.testing.assert_array_equal(labels, case["output_labels"])
    np.testing.assert_allclose(
        inverter(np.array(case["inverter_input"])), case["inverter_output"], atol=1e-9
    )
    # labels=None works (the original crashed here: it copied None into an array and went on).
    image_only, inverter = op(image, return_inverter=True)
    np.testing.assert_array_equal(image_only, out)
    np.testing.assert_array_equal(op(image), out)


def test_crop_and_pad_hand_checked():
    image = random_image()
    # Crop 10 top, 20 bottom, 30 left, 40 right: a 170 x 230 view; boxes move by (-30, -10).
    out, labels = Crop(10, 20, 30, 40)(image, LABELS)
    np.testing.assert_array_equal(out, image[10:180, 30:260])
    np.testing.assert_array_equal(labels[0], [1, 0, 5, 90, 140])  # xmin 20 - 30 clipped to 0
    np.testing.assert_array_equal(labels[2], [3, 220, 110, 229, 169])  # clipped to 229 / 169
    # Pad 5 / 6 / 7 / 8 with a colour: boxes move by (+7, +5), are never clipped, invert exactly.
    out, labels, inverter = Pad(5, 6, 7, 8, background=(1, 2, 3))(
        image, LABELS, return_inverter=True
    )
    assert out.shape == (211, 315, 3)
    np.testing.assert_array_equal(out[5:205, 7:307], image)
    assert (out[:5] == [1, 2, 3]).all() and (out[:, 307:] == [1, 2, 3]).all()
    np.testing.assert_array_equal(labels[:, 1:], LABELS[:, 1:] + [7, 5, 7, 5])
    np.testing.assert_array_equal(inverter(predictions_from(labels)), predictions_from(LABELS))


def test_crop_pad_keeps_dtype_and_gray_images():
    image = random_image()[:, :, 0].astype(np.float32)
    out = CropPad(-10, -10, 50, 60, background=(7, 7, 7))(image)
    assert out.dtype == np.float32 and out.shape == (50, 60)
    assert (out[:10] == 7).all()
    np.testing.assert_array_equal(out[10:, 10:], image[:40, :50])


def test_crop_pad_errors():
    with pytest.raises(ValueError, match="does not overlap"):
        CropPad(200, 0, 10, 10)(random_image())
    with pytest.raises(ValueError, match="patch_height"):
        CropPad(0, 0, 0, 10)(random_image())
    with pytest.raises(ValueError, match="must_match"):
        PatchCoordinateGenerator(must_match="h_h")
    with pytest.raises(ValueError, match="min_scale"):
        PatchCoordinateGenerator(min_scale=1.0, max_scale=0.5)
    with pytest.raises(ValueError, match="crop_top"):
        Crop(-1, 0, 0, 0)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    must_match=st.sampled_from(["h_w", "h_ar", "w_ar"]),
    scales=st.sampled_from([(0.3, 1.0), (1.0, 4.0), (0.5, 2.0)]),
    uniform=st.booleans(),
)
def test_patch_coordinate_generator_properties(seed, must_match, scales, uniform):
    kwargs = dict(
        img_height=120,
        img_width=200,
        must_match=must_match,
        min_scale=scales[0],
        max_scale=scales[1],
        scale_uniformly=uniform and must_match == "h_w",
        rng=seed,
    )
    ymin, xmin, height, width = PatchCoordinateGenerator(**kwargs)()
    # The same seed, the same patch.
    assert (ymin, xmin, height, width) == PatchCoordinateGenerator(**kwargs)()
    # Each axis: a patch inside the image, or one that contains the image.
    for origin, side, image_side in ((ymin, height, 120), (xmin, width, 200)):
        assert side >= 1
        if side <= image_side:
            assert 0 <= origin <= image_side - side
        else:
            assert image_side - side <= origin <= 0
    if must_match == "h_w":
        assert int(scales[0] * 120) <= height <= scales[1] * 120
    if must_match == "w_ar":
        assert int(scales[0] * 200) <= width <= scales[1] * 200
        # height = int(width / ar) with ar in [0.5, 2].
        assert width / 2 - 1 <= height <= width * 2


def make_random_patch(seed, **kwargs):
    return RandomPatch(
        PatchCoordinateGenerator(min_scale=0.3, max_scale=1.0),
        box_filter=BoxFilter(overlap_criterion="center_point"),
        image_validator=ImageValidator(overlap_criterion="iou", bounds=(0.3, 1.0)),
        rng=seed,
        **kwargs,
    )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_random_patch_boxes_inside_and_inverter(seed):
    image = random_image()
    # An extra column tags each box so the kept ones can be matched to their originals.
    tagged = np.concatenate([LABELS, np.arange(3)[:, None]], axis=1)
    out, labels, inverter = make_random_patch(seed)(image, tagged, return_inverter=True)
    height, width = out.shape[:2]
    assert (labels[:, [1, 3]] >= 0).all() and (labels[:, [1, 3]] <= width - 1).all()
    assert (labels[:, [2, 4]] >= 0).all() and (labels[:, [2, 4]] <= height - 1).all()
    # Inverted boxes lie inside their originals (clipping only shrinks), with equality where a box
    # was not clipped.
    back = inverter(predictions_from(labels))
    original = tagged[labels[:, 5]]
    assert (back[:, [2, 3]] >= original[:, [1, 2]]).all()
    assert (back[:, [4, 5]] <= original[:, [3, 4]]).all()


def test_random_patch_reproducible_and_failure_modes():
    image = random_image()
    op_a, op_b = make_random_patch(9), make_random_patch(9)
    for _ in range(6):
        (im_a, lb_a), (im_b, lb_b) = op_a(image, LABELS), op_b(image, LABELS)
        np.testing.assert_array_equal(im_a, im_b)
        np.testing.assert_array_equal(lb_a, lb_b)
    # An impossible validator (every box must lie fully inside a patch of at most 2 x 2 pixels).
    impossible = dict(
        patch_coord_generator=PatchCoordinateGenerator(
            patch_height=2, patch_width=2, min_scale=0.1, max_scale=0.2
        ),
        image_validator=ImageValidator(overlap_criterion="area", bounds=(1.0, 1.0)),
        rng=0,
    )
    out, labels, inverter = RandomPatch(**impossible)(image, LABELS, return_inverter=True)
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(labels, LABELS)
    np.testing.assert_array_equal(inverter(predictions_from(LABELS)), predictions_from(LABELS))
    assert RandomPatch(can_fail=True, **impossible)(image, LABELS) == (None, None)
    assert RandomPatch(can_fail=True, **impossible)(image, LABELS, True) == (None, None, None)
    # Without labels the validator is not consulted: any patch goes.
    assert RandomPatch(**impossible)(image).shape == (2, 2, 3)


def test_random_patch_inf_satisfies_its_validator():
    image = random_image()
    validator = ImageValidator(overlap_criterion="iou", n_boxes_min=1)
    bounds = BoundGenerator(((0.5, None), (0.7, None)))
    op = RandomPatchInf(
        PatchCoordinateGenerator(min_scale=0.3, max_scale=1.0),
        box_filter=BoxFilter(check_overlap=False, check_min_area=False),
        image_validator=validator,
        bound_generator=bounds,
        prob=0.99,
        rng=2,
    )
    changed = 0
    for _ in range(20):
        out, labels, inverter = op(image, LABELS, return_inverter=True)
        if out.shape != image.shape or not np.array_equal(out, image):
            changed += 1
            height, width = out.shape[:2]
            assert 0.5 <= width / height <= 2.0
            # The inverter of the zero box gives the patch origin. The accepted patch has a box
            # whose IoU with it is above the drawn bound (0.5 or 0.7).
            x0, y0 = inverter(np.zeros((1, 6)))[0, 2:4]
            overlaps = iou(LABELS[:, 1:], [x0, y0, x0 + width, y0 + height], coords="corners")
            assert overlaps.max() > 0.5
    assert changed >= 15
    with pytest.raises(ValueError, match="prob"):
        RandomPatchInf(PatchCoordinateGenerator(), image_validator=validator, prob=1.0)


def test_fixed_aspect_ratio_ops():
    image = random_image()  # 200 x 300, aspect ratio 1.5
    tagged = np.concatenate([LABELS, np.arange(3)[:, None]], axis=1)
    for ratio, expected_shape in ((1.0, (200, 200, 3)), (2.0, (150, 300, 3))):
        out = RandomMaxCropFixedAR(ratio, rng=0)(image)
        assert out.shape == expected_shape
    # Padding contains the whole image and inverts exactly (boxes are never clipped).
    for ratio, expected_shape in (
        (1.0, (300, 300, 3)),
        (2.0, (200, 400, 3)),
        (1.25, (240, 300, 3)),
    ):
        op = RandomPadFixedAR(ratio, background=(9, 9, 9), rng=1)
        out, labels, inverter = op(image, tagged, return_inverter=True)
        assert out.shape == expected_shape
        assert (out == 9).all(axis=-1).sum() == out.shape[0] * out.shape[1] - 200 * 300
        np.testing.assert_array_equal(inverter(predictions_from(labels)), predictions_from(tagged))
