"""Tests of the geometric ops: golden parity with the original, hand-checked cases, properties."""

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_generator.object_detection_2d_geometric_ops import (
    DEFAULT_INTERPOLATION_MODES,
    Flip,
    RandomFlip,
    RandomRotate,
    RandomScale,
    RandomTranslate,
    Resize,
    ResizeRandomInterp,
    Rotate,
    Scale,
    Translate,
)
from data_generator.object_detection_2d_image_boxes_validation_utils import (
    BoxFilter,
    ImageValidator,
)

GOLDEN_OPS = {"Resize", "Flip", "Translate", "Scale", "Rotate"}
# Golden images come from OpenCV 5.0.0; other builds may differ by 1 where they interpolate.
EXACT_OPENCV = cv2.__version__ == "5.0.0"

LABELS = np.array([[1, 20, 15, 120, 150], [2, 150, 10, 290, 90], [3, 250, 120, 299, 199]])


def random_image(seed=0, height=200, width=300, channels=3):
    shape = (height, width) if channels is None else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def assert_images_match(actual, expected, interpolated):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    if EXACT_OPENCV or not interpolated:
        np.testing.assert_array_equal(actual, expected)
    else:
        diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
        assert diff.max() <= 1


def predictions_from(labels, conf=0.5):
    """Labels ``[class, xmin, ymin, xmax, ymax]`` -> predictions ``[class, conf, xmin, ...]``."""
    labels = np.asarray(labels, dtype=np.float64)
    return np.insert(labels, 1, conf, axis=1)


# ---------------------------------------------------------------- golden values


def test_golden_case(transform_case, transforms_golden, make_transform):
    case = transform_case
    op = make_transform(case["spec"])
    image = transforms_golden["inputs"][case["input"]]
    labels = np.array(case["input_labels"], dtype=np.int64)
    if case.get("return_inverter"):
        out_image, out_labels, inverter = op(image, labels, return_inverter=True)
        np.testing.assert_allclose(
            inverter(np.array(case["inverter_input"])), case["inverter_output"], atol=1e-9
        )
    else:
        out_image, out_labels = op(image, labels)

    # Labels: exact, and integer labels stay integer.
    assert out_labels.dtype == np.int64
    np.testing.assert_array_equal(out_labels, case["output_labels"])

    expected = transforms_golden["npz"][case["output_image_key"]]
    if case["spec"]["name"] == "Rotate":
        # The original's cv2.warpAffine image, exactly: np.rot90 moved by one pixel as its json
        # says, with a zero first row/column, so that the image and the boxes agree.
        relation = case["relation_to_np_rot90"]
        k = relation["np_rot90_k"]
        dy, dx = relation["shift_down_rows"], relation["shift_right_cols"]
        np.testing.assert_array_equal(out_image, expected)
        h, w = out_image.shape[:2]
        np.testing.assert_array_equal(out_image[dy:, dx:], np.rot90(image, k)[: h - dy, : w - dx])
        assert not out_image[:dy].any() and not out_image[:, :dx].any()
    else:
        interpolated = case["spec"]["name"] in ("Resize", "Scale")
        assert_images_match(out_image, expected, interpolated)

    # labels=None (inference) gives the same image alone.
    no_labels = op(image, return_inverter=True) if case.get("return_inverter") else op(image)
    image_only = no_labels[0] if case.get("return_inverter") else no_labels
    np.testing.assert_array_equal(image_only, out_image)


def test_translate_is_integer_shift_with_fill():
    # dy=0.1 of 200 rows = 20, dx=-0.2 of 300 columns = -60.
    image = random_image()
    out = Translate(dy=0.1, dx=-0.2, background=(7, 8, 9))(image)
    np.testing.assert_array_equal(out[20:, :240], image[:180, 60:])
    assert (out[:20] == [7, 8, 9]).all() and (out[:, 240:] == [7, 8, 9]).all()


# ---------------------------------------------------------------- hand-checked cases


def test_resize_rounds_half_to_even_and_inverts():
    # 15 * 1.5 = 22.5 -> 22 and 199 * 1.5 = 298.5 -> 298 (np.round, half to even).
    _, labels = Resize(300, 300)(random_image(), LABELS)
    assert labels[0, 2] == 22 and labels[2, 4] == 298


def test_resize_box_filter_removes_boxes_made_degenerate():
    # At a quarter of the size the 1-pixel-wide box x in [100, 101] becomes [25, 25.25] -> [25, 25]
    # after rounding: zero width, so the degenerate-box filter drops it.
    labels = np.array([[1, 100, 10, 101, 150], [2, 10, 10, 200, 150]])
    box_filter = BoxFilter(check_overlap=False, check_min_area=False, check_degenerate=True)
    _, kept = Resize(50, 75, box_filter=box_filter)(random_image(), labels)
    np.testing.assert_array_equal(kept[:, 0], [2])


def test_flip_inverter_maps_predictions_back_exactly():
    # Added here (the original's Flip had no inverter, bug 23): flipping is its own inverse.
    image = random_image()
    for dim in ("horizontal", "vertical"):
        _, flipped, inverter = Flip(dim)(image, LABELS, return_inverter=True)
        back = inverter(predictions_from(flipped))
        np.testing.assert_array_equal(back, predictions_from(LABELS))


def test_rotate_four_quarter_turns_is_identity():
    # Labels come back exactly. The image too, except the pixels the original's transform pushes
    # out of the frame on the way: column 0 (first turn) and row 0 (second turn).
    image, labels = random_image(), LABELS
    for _ in range(4):
        image, labels = Rotate(90)(image, labels)
    np.testing.assert_array_equal(image[1:, 1:], random_image()[1:, 1:])
    assert not image[0].any() and not image[:, 0].any()
    np.testing.assert_array_equal(labels, LABELS)
    out, back = Rotate(270)(*Rotate(90)(random_image(), LABELS))
    np.testing.assert_array_equal(out[:, 1:], random_image()[:, 1:])
    assert not out[:, 0].any()
    np.testing.assert_array_equal(back, LABELS)


def original_rotation_matrix(angle, height, width):
    """The affine map of the original's Rotate, ``(x, y) -> (x', y')``, written out by hand:
    (90) ``(y, W - x)``, (180) ``(W - x, H - y)``, (270) ``(H - y, x)``."""
    return {
        90: np.float64([[0, 1, 0], [-1, 0, width]]),
        180: np.float64([[-1, 0, width], [0, -1, height]]),
        270: np.float64([[0, -1, height], [1, 0, 0]]),
    }[angle]


def block_image(height, width, box):
    """A zero image with the pixels ``box = (xmin, ymin, xmax, ymax)`` (inclusive) set to 255."""
    image = np.zeros((height, width, 3), np.uint8)
    xmin, ymin, xmax, ymax = box
    image[ymin : ymax + 1, xmin : xmax + 1] = 255
    return image


def block_extent(image):
    """``(xmin, ymin, xmax, ymax)`` of the non-zero pixels."""
    ys, xs = np.nonzero(image[..., 0])
    return xs.min(), ys.min(), xs.max(), ys.max()


@pytest.mark.parametrize("angle", [90, 180, 270])
@pytest.mark.parametrize("size", [(200, 300), (300, 200), (120, 120), (57, 91)])
def test_rotate_moves_a_block_and_its_box_together(angle, size):
    # A solid block covering pixel columns xmin..xmax and rows ymin..ymax, labelled with exactly
    # those numbers: after the rotation the block's pixels and the box agree again (the issue's
    # example: columns 30..49 of a 200-wide image end at 151..170 after 180 degrees).
    height, width = size
    box = (30, 10, 49, height - 20)
    out, labels = Rotate(angle)(block_image(height, width, box), np.array([[1, *box]]))
    np.testing.assert_array_equal(block_extent(out), labels[0, 1:])
    assert out.shape[:2] == ((width, height) if angle in (90, 270) else (height, width))
    # The whole image is the original's cv2.warpAffine with its rotation matrix.
    image = random_image(seed=angle, height=height, width=width)
    matrix = original_rotation_matrix(angle, height, width)
    expected = cv2.warpAffine(image, matrix, dsize=out.shape[1::-1])
    np.testing.assert_array_equal(Rotate(angle)(image), expected)


def test_rotate_by_180_example_from_the_original():
    out, labels = Rotate(180)(
        block_image(100, 200, (30, 20, 49, 39)), np.array([[1, 30, 20, 49, 39]])
    )
    np.testing.assert_array_equal(labels, [[1, 151, 61, 170, 80]])
    assert block_extent(out) == (151, 61, 170, 80)


def test_random_rotate_moves_blocks_with_their_boxes():
    rotate = RandomRotate(prob=1.0, rng=3)
    box = (12, 5, 40, 30)
    seen = set()
    for _ in range(12):
        out, labels = rotate(block_image(60, 90, box), np.array([[1, *box]]))
        np.testing.assert_array_equal(block_extent(out), labels[0, 1:])
        seen.add(out.shape)
    assert seen == {(90, 60, 3), (60, 90, 3)}  # both 90/270 and 180 were drawn


def test_ops_keep_a_single_channel_axis():
    gray = random_image(channels=1)
    assert Resize(50, 60)(gray).shape == (50, 60, 1)
    assert Flip("horizontal")(gray).shape == (200, 300, 1)
    assert Translate(0.1, 0.1)(gray).shape == (200, 300, 1)
    assert Scale(1.2)(gray).shape == (200, 300, 1)
    assert Rotate(90)(gray).shape == (300, 200, 1)


def test_float_labels_and_extra_columns_are_carried():
    labels = np.array([[1, 20.5, 15.25, 120.0, 150.0, 7.0]])
    _, out = Rotate(180)(random_image(), labels)
    np.testing.assert_allclose(out, [[1, 180.0, 50.0, 279.5, 184.75, 7.0]])
    _, out = Translate(0.1, 0.0, clip_boxes=False)(random_image(), labels)
    np.testing.assert_allclose(out, [[1, 20.5, 35.25, 120.0, 170.0, 7.0]])


def test_ops_do_not_modify_their_inputs():
    image, labels = random_image(), LABELS.copy()
    for op in (Resize(100, 100), Flip(), Translate(0.2, 0.2), Scale(1.5), Rotate(90)):
        op(image, labels)
        np.testing.assert_array_equal(image, random_image())
        np.testing.assert_array_equal(labels, LABELS)


def test_constructor_errors_name_the_value():
    with pytest.raises(ValueError, match="dim"):
        Flip("diagonal")
    with pytest.raises(ValueError, match="angle"):
        Rotate(45)
    with pytest.raises(ValueError, match="factor"):
        Scale(0)
    with pytest.raises(ValueError, match="prob"):
        RandomFlip(prob=1.5)
    with pytest.raises(ValueError, match="min_factor"):
        RandomScale(min_factor=2.0, max_factor=1.0)


# ---------------------------------------------------------------- random ops


def random_ops(seed):
    validator = ImageValidator(overlap_criterion="area", bounds=(0.5, 1.0), n_boxes_min=1)
    box_filter = BoxFilter(overlap_criterion="area", overlap_bounds=(0.3, 1.0))
    return {
        "ResizeRandomInterp": ResizeRandomInterp(120, 160, rng=seed),
        "RandomFlip": RandomFlip(prob=0.5, rng=seed),
        "RandomTranslate": RandomTranslate(
            prob=0.8, box_filter=box_filter, image_validator=validator, rng=seed
        ),
        "RandomScale": RandomScale(
            prob=0.8, box_filter=box_filter, image_validator=validator, rng=seed
        ),
        "RandomRotate": RandomRotate(prob=0.8, rng=seed),
    }


@pytest.mark.parametrize("name", list(random_ops(0)))
def test_random_ops_are_reproducible_with_a_seed(name):
    image = random_image()

    def run(seed):
        op = random_ops(seed)[name]
        return [op(image, LABELS) for _ in range(8)]

    first, second, other = run(5), run(5), run(6)
    for (im1, lb1), (im2, lb2) in zip(first, second):
        np.testing.assert_array_equal(im1, im2)
        np.testing.assert_array_equal(lb1, lb2)
    # A different seed gives a different sequence (8 draws each: a tie has negligible chance).
    assert any(
        im1.shape != im3.shape or not np.array_equal(im1, im3) or not np.array_equal(lb1, lb3)
        for (im1, lb1), (im3, lb3) in zip(first, other)
    )


@pytest.mark.parametrize("name", list(random_ops(0)))
def test_random_ops_work_without_labels(name):
    op = random_ops(3)[name]
    for _ in range(5):
        out = op(random_image())
        assert isinstance(out, np.ndarray) and out.dtype == np.uint8


def test_random_ops_accept_a_shared_generator():
    rng = np.random.default_rng(11)
    flip, rotate = RandomFlip(rng=rng), RandomRotate(rng=rng)
    assert flip.rng is rng and rotate.rng is rng


def test_random_flip_probability_extremes_and_inverter():
    image = random_image()
    never, always = RandomFlip(prob=0.0, rng=0), RandomFlip(prob=1.0, rng=0)
    out, labels, inverter = never(image, LABELS, return_inverter=True)
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(inverter(predictions_from(LABELS)), predictions_from(LABELS))
    out, labels, inverter = always(image, LABELS, return_inverter=True)
    np.testing.assert_array_equal(out, image[:, ::-1])
    np.testing.assert_array_equal(inverter(predictions_from(labels)), predictions_from(LABELS))


def test_resize_random_interp_uses_every_mode_and_matches_resize():
    image = random_image()
    op = ResizeRandomInterp(90, 140, rng=1)
    seen = set()
    for _ in range(40):
        out = op(image)
        mode = op.resize.interpolation_mode
        seen.add(mode)
        np.testing.assert_array_equal(out, Resize(90, 140, interpolation_mode=mode)(image))
    assert seen == set(DEFAULT_INTERPOLATION_MODES)


def test_random_translate_returns_input_when_no_shift_is_valid():
    # Every box must keep all of its area, which no shift of at least 3% of the image allows for a
    # box touching all four borders.
    labels = np.array([[1, 0, 0, 299, 199]])
    validator = ImageValidator(overlap_criterion="area", bounds=(1.0, 1.0), n_boxes_min="all")
    op = RandomTranslate(prob=1.0, image_validator=validator, n_trials_max=5, rng=0)
    out, kept = op(random_image(), labels)
    np.testing.assert_array_equal(out, random_image())
    np.testing.assert_array_equal(kept, labels)


class _AcceptsNth(ImageValidator):
    """A validator that rejects every call but the ``n``-th (1-based)."""

    def __init__(self, n):
        super().__init__()
        self.n, self.calls = n, 0

    def __call__(self, labels, image_height, image_width):
        self.calls += 1
        return self.calls == self.n


def test_random_translate_and_scale_apply_the_first_accepted_draw_in_the_originals_order():
    # The retry loop draws (|dy|, |dx|, sign dy, sign dx) per trial for RandomTranslate and one
    # factor per trial for RandomScale, after the prob draw; the 3rd trial is the accepted one.
    image = random_image()
    rng = np.random.default_rng(7)
    rng.uniform(0, 1)  # the prob draw
    for _ in range(3):
        dy, dx = rng.uniform(0.03, 0.3), rng.uniform(0.03, 0.3)
        dy, dx = (dy if rng.integers(2) else -dy), (dx if rng.integers(2) else -dx)
    op = RandomTranslate(prob=1.0, image_validator=_AcceptsNth(3), n_trials_max=3, rng=7)
    out, boxes = op(image, LABELS)
    expected, expected_boxes = Translate(dy=dy, dx=dx)(image, LABELS)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(boxes, expected_boxes)
    assert op.image_validator.calls == 3

    rng = np.random.default_rng(7)
    rng.uniform(0, 1)
    factor = [rng.uniform(0.5, 1.5) for _ in range(3)][-1]
    op = RandomScale(prob=1.0, image_validator=_AcceptsNth(3), n_trials_max=3, rng=7)
    out, boxes = op(image, LABELS)
    expected, expected_boxes = Scale(factor=factor)(image, LABELS)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(boxes, expected_boxes)


# ---------------------------------------------------------------- properties

boxes_strategy = st.lists(
    st.tuples(
        st.integers(0, 299), st.integers(0, 199), st.integers(1, 150), st.integers(1, 150)
    ).map(lambda b: [1, b[0], b[1], min(b[0] + b[2], 300), min(b[1] + b[3], 200)]),
    min_size=1,
    max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(
    boxes=boxes_strategy,
    dy=st.floats(-0.6, 0.6),
    dx=st.floats(-0.6, 0.6),
    factor=st.floats(0.3, 3.0),
)
def test_clipping_ops_keep_boxes_inside_the_image(boxes, dy, dx, factor):
    labels = np.array(boxes)
    image = np.zeros((200, 300, 3), np.uint8)
    for op in (Translate(dy, dx), Scale(factor)):
        _, out = op(image, labels)
        assert (out[:, [1, 3]] >= 0).all() and (out[:, [1, 3]] <= 299).all()
        assert (out[:, [2, 4]] >= 0).all() and (out[:, [2, 4]] <= 199).all()


@settings(max_examples=40, deadline=None)
@given(
    boxes=boxes_strategy,
    angle=st.sampled_from([90, 180, 270]),
    dim=st.sampled_from(["horizontal", "vertical"]),
    out_size=st.tuples(st.integers(20, 600), st.integers(20, 600)),
)
def test_boxes_stay_inside_and_inverters_map_back(boxes, angle, dim, out_size):
    labels = np.array(boxes)
    image = np.zeros((200, 300, 3), np.uint8)

    out, rotated = Rotate(angle)(image, labels)
    height, width = out.shape[:2]
    assert (rotated[:, [1, 3]] >= 0).all() and (rotated[:, [1, 3]] <= width).all()
    assert (rotated[:, [2, 4]] >= 0).all() and (rotated[:, [2, 4]] <= height).all()
    assert (rotated[:, 3] > rotated[:, 1]).all() and (rotated[:, 4] > rotated[:, 2]).all()

    _, flipped, inverter = Flip(dim)(image, labels, return_inverter=True)
    assert (flipped[:, [1, 3]] >= 0).all() and (flipped[:, [1, 3]] <= 300).all()
    assert (flipped[:, [2, 4]] >= 0).all() and (flipped[:, [2, 4]] <= 200).all()
    np.testing.assert_array_equal(inverter(predictions_from(flipped)), predictions_from(labels))

    out_h, out_w = out_size
    out, resized, inverter = Resize(out_h, out_w)(image, labels, return_inverter=True)
    assert out.shape == (out_h, out_w, 3)
    assert (resized[:, [1, 3]] >= 0).all() and (resized[:, [1, 3]] <= out_w).all()
    assert (resized[:, [2, 4]] >= 0).all() and (resized[:, [2, 4]] <= out_h).all()
    # Forward rounding moves a corner by <= 0.5 output pixels (= 0.5 * in/out input pixels),
    # the inverter's rounding by <= 0.5 more.
    back = inverter(predictions_from(resized))
    tolerance = 0.5 * np.array([300 / out_w, 200 / out_h, 300 / out_w, 200 / out_h]) + 0.5
    assert (np.abs(back[:, 2:] - labels[:, 1:]) <= tolerance + 1e-9).all()
