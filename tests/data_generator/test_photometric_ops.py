"""Tests of the photometric ops: golden parity, hand-checked values, seeded reproducibility."""

import cv2
import numpy as np
import pytest

from data_generator.object_detection_2d_photometric_ops import (
    Brightness,
    ChannelSwap,
    Contrast,
    ConvertColor,
    ConvertDataType,
    ConvertTo3Channels,
    Gamma,
    HistogramEqualization,
    Hue,
    RandomBrightness,
    RandomChannelSwap,
    RandomContrast,
    RandomGamma,
    RandomHistogramEqualization,
    RandomHue,
    RandomSaturation,
    Saturation,
)

GOLDEN_OPS = {"ConvertColor", "ConvertTo3Channels"}
EXACT_OPENCV = cv2.__version__ == "5.0.0"
LABELS = np.array([[1, 20, 15, 120, 150], [2, 150, 10, 290, 90]])


def random_image(seed=0, shape=(60, 80, 3)):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_golden_case(transform_case, transforms_golden, make_transform):
    op = make_transform(transform_case["spec"])
    image = transforms_golden["inputs"][transform_case["input"]]
    expected = transforms_golden["npz"][transform_case["output_image_key"]]
    out = op(image)
    assert out.shape == expected.shape and out.dtype == expected.dtype
    if EXACT_OPENCV or transform_case["spec"]["name"] != "ConvertColor":
        np.testing.assert_array_equal(out, expected)
    else:  # HSV conversions may round differently in another OpenCV build.
        assert np.abs(out.astype(np.int16) - expected).max() <= 1
    # Labels pass through unchanged.
    out2, labels = op(image, LABELS)
    np.testing.assert_array_equal(out2, out)
    np.testing.assert_array_equal(labels, LABELS)


def test_hand_checked_values():
    hsv = np.array([[[170.0, 200.0, 50.0], [10.0, 100.0, 250.0]]], dtype=np.float32)
    # Hue: (170 + 20) % 180 = 10 and (10 + 20) = 30; only channel 0 changes.
    np.testing.assert_allclose(Hue(20)(hsv)[..., 0], [[10.0, 30.0]])
    np.testing.assert_allclose(Hue(-20)(hsv)[..., 0], [[150.0, 170.0]])
    # Saturation x1.5: 200 -> 300 clipped to 255, 100 -> 150.
    np.testing.assert_allclose(Saturation(1.5)(hsv)[..., 1], [[255.0, 150.0]])
    np.testing.assert_array_equal(Saturation(1.5)(hsv)[..., [0, 2]], hsv[..., [0, 2]])

    rgb = np.array([[[0.0, 100.0, 200.0]]], dtype=np.float32)
    # Brightness +60: 60, 160, 260 -> 255. Contrast x2 about 127.5: -127.5 -> 0, 72.5, 272.5 -> 255.
    np.testing.assert_allclose(Brightness(60)(rgb), [[[60.0, 160.0, 255.0]]])
    np.testing.assert_allclose(Brightness(-150)(rgb), [[[0.0, 0.0, 50.0]]])
    np.testing.assert_allclose(Contrast(2.0)(rgb), [[[0.0, 72.5, 255.0]]])
    np.testing.assert_allclose(Contrast(0.5)(rgb), [[[63.75, 113.75, 163.75]]])

    # Gamma 2: 255 * sqrt(64 / 255) = 127.75 -> 127 (truncated as in the original); 0 and 255 fixed.
    gray = np.array([[0, 64, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(Gamma(2.0)(gray), [[0, 127, 255]])
    np.testing.assert_array_equal(Gamma(1.0)(gray), gray)

    # ConvertDataType rounds (half to even) and clips instead of wrapping around.
    floats = np.array([[[0.4, 2.5, 254.6]], [[-3.0, 300.0, 3.5]]])
    np.testing.assert_array_equal(ConvertDataType("uint8")(floats), [[[0, 2, 255]], [[0, 255, 4]]])
    assert ConvertDataType("float32")(random_image()).dtype == np.float32


def test_histogram_equalization_acts_on_v_only():
    hsv = random_image(1)
    out = HistogramEqualization()(hsv)
    np.testing.assert_array_equal(out[..., :2], hsv[..., :2])
    np.testing.assert_array_equal(out[..., 2], cv2.equalizeHist(np.ascontiguousarray(hsv[..., 2])))


def test_channel_swap_and_conversions():
    image = random_image(2)
    np.testing.assert_array_equal(ChannelSwap((2, 1, 0))(image), image[..., ::-1])
    gray = ConvertColor("RGB", "GRAY", keep_3ch=False)(image)
    np.testing.assert_array_equal(gray, cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    np.testing.assert_array_equal(ConvertTo3Channels()(image), image)
    with pytest.raises(ValueError, match="HSV"):
        ConvertColor("HSV", "GRAY")
    with pytest.raises(ValueError, match="shape"):
        ConvertTo3Channels()(np.zeros((4, 4, 2), np.uint8))


def test_ops_do_not_modify_their_inputs():
    hsv = random_image(3).astype(np.float32)
    before = hsv.copy()
    for op in (Hue(30), Saturation(2.0), Brightness(10), Contrast(1.5)):
        op(hsv)
    np.testing.assert_array_equal(hsv, before)
    uint8 = random_image(3)
    HistogramEqualization()(uint8)
    np.testing.assert_array_equal(uint8, random_image(3))


def test_constructor_errors_name_the_value():
    with pytest.raises(ValueError, match="delta"):
        Hue(200)
    with pytest.raises(ValueError, match="factor"):
        Saturation(0)
    with pytest.raises(ValueError, match="gamma"):
        Gamma(-1)
    with pytest.raises(ValueError, match="lower"):
        RandomContrast(lower=2.0, upper=1.0)
    with pytest.raises(ValueError, match="prob"):
        RandomHue(prob=-0.1)


def random_ops(seed, prob=0.5):
    return {
        "RandomHue": (RandomHue(prob=prob, rng=seed), np.float32),
        "RandomSaturation": (RandomSaturation(prob=prob, rng=seed), np.float32),
        "RandomBrightness": (RandomBrightness(prob=prob, rng=seed), np.float32),
        "RandomContrast": (RandomContrast(prob=prob, rng=seed), np.float32),
        "RandomGamma": (RandomGamma(prob=prob, rng=seed), np.uint8),
        "RandomHistogramEqualization": (RandomHistogramEqualization(prob=prob, rng=seed), np.uint8),
        "RandomChannelSwap": (RandomChannelSwap(prob=prob, rng=seed), np.uint8),
    }


@pytest.mark.parametrize("name", list(random_ops(0)))
def test_random_ops_reproducible_and_probability(name):
    def run(seed, prob=0.5):
        op, dtype = random_ops(seed, prob)[name]
        image = random_image(4).astype(dtype)
        return image, [op(image) for _ in range(10)]

    image, first = run(7)
    _, second = run(7)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # prob=0 never changes the image; prob=1 always does (the random parameters have no atom at
    # the identity, and the test image's V histogram is not already flat).
    _, never = run(7, prob=0.0)
    _, always = run(7, prob=1.0)
    assert all(np.array_equal(out, image) for out in never)
    assert not any(np.array_equal(out, image) for out in always)
    # Labels pass through; labels=None gives the image alone.
    op, dtype = random_ops(1)[name]
    out, labels = op(image, LABELS)
    np.testing.assert_array_equal(labels, LABELS)
    assert isinstance(op(image), np.ndarray)
