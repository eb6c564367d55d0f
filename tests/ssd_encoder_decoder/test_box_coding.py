"""Box coding: the numpy form (`box_coding`) and the `keras.ops` form (`detection_ops`).

Every test runs on both forms with the same cases: hand-checked offsets, the round trip
``decode(encode(b)) == b`` (and back) for every ``coords`` and several variances, agreement of
the two forms, and per-anchor variances as they sit in a model output.
"""

import numpy as np
import pytest

from bounding_box_utils.bounding_box_utils import convert_coordinates
from ssd_encoder_decoder import box_coding

COORDS = ["centroids", "minmax", "corners"]
VARIANCES = [(0.1, 0.1, 0.2, 0.2), (1.0, 1.0, 1.0, 1.0), (0.5, 0.25, 2.0, 0.3)]


def _numpy_form():
    return box_coding.encode_boxes, box_coding.decode_boxes, np.asarray


def _keras_form():
    keras = pytest.importorskip("keras")
    from keras_layers import detection_ops

    def to_numpy(x):
        return np.asarray(keras.ops.convert_to_numpy(x))

    return detection_ops.encode_boxes, detection_ops.decode_boxes, to_numpy


FORMS = {"numpy": _numpy_form, "keras_ops": _keras_form}


@pytest.fixture(params=sorted(FORMS))
def form(request):
    """``(encode_boxes, decode_boxes, to_numpy)`` of one implementation."""
    return FORMS[request.param]()


def tolerance(array) -> float:
    """float64 round trips are exact to rounding; JAX computes in float32 by default."""
    return 1e-12 if array.dtype == np.float64 else 1e-5


def random_boxes(rng, n):
    """``(n, 4)`` corners in [0, 1] with sides in [0.02, 0.5]."""
    lo = rng.uniform(0.0, 0.5, size=(n, 2))
    return np.concatenate([lo, lo + rng.uniform(0.02, 0.5, size=(n, 2))], axis=1)


def in_format(corners, coords):
    if coords == "corners":
        return corners
    return convert_coordinates(corners, 0, f"corners2{coords}")


# One box and one anchor in each format, and the offsets a hand computation gives.
# Box: corners (0.4, 0.4, 0.6, 0.6) = centroids (0.5, 0.5, 0.2, 0.2).
# Anchor: corners (0.35, 0.3, 0.45, 0.7) = centroids (0.4, 0.5, 0.1, 0.4).
# Variances (0.1, 0.1, 0.2, 0.2).
HAND_CASES = {
    # ((0.5 - 0.4) / 0.1 / 0.1, (0.5 - 0.5) / 0.4 / 0.1, ln(0.2 / 0.1) / 0.2, ln(0.2 / 0.4) / 0.2)
    "centroids": (
        [0.5, 0.5, 0.2, 0.2],
        [0.4, 0.5, 0.1, 0.4],
        [10.0, 0.0, np.log(2.0) / 0.2, np.log(0.5) / 0.2],
    ),
    # xmin: 0.05 / 0.1 / 0.1; ymin: 0.1 / 0.4 / 0.1; xmax: 0.15 / 0.1 / 0.2; ymax: -0.1 / 0.4 / 0.2
    "corners": ([0.4, 0.4, 0.6, 0.6], [0.35, 0.3, 0.45, 0.7], [5.0, 2.5, 7.5, -1.25]),
    # (xmin, xmax, ymin, ymax): 0.05 / 0.1 / 0.1, 0.15 / 0.1 / 0.1, 0.1 / 0.4 / 0.2,
    # -0.1 / 0.4 / 0.2
    "minmax": ([0.4, 0.6, 0.4, 0.6], [0.35, 0.45, 0.3, 0.7], [5.0, 15.0, 1.25, -1.25]),
}


@pytest.mark.parametrize("coords", COORDS)
def test_hand_computed_offsets(form, coords):
    encode, decode, to_numpy = form
    box, anchor, expected = (np.array([v], dtype=np.float64) for v in HAND_CASES[coords])
    variances = np.array([0.1, 0.1, 0.2, 0.2])
    offsets = to_numpy(encode(box, anchor, variances, coords))
    np.testing.assert_allclose(offsets, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        to_numpy(decode(expected, anchor, variances, coords)), box, rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("variances", VARIANCES)
@pytest.mark.parametrize("coords", COORDS)
def test_round_trip(form, coords, variances):
    encode, decode, to_numpy = form
    rng = np.random.default_rng(7)
    gt = in_format(random_boxes(rng, 50), coords)
    anchors = in_format(random_boxes(rng, 50), coords)
    variances = np.array(variances)
    offsets = to_numpy(encode(gt, anchors, variances, coords))
    assert offsets.shape == (50, 4)
    back = to_numpy(decode(offsets, anchors, variances, coords))
    np.testing.assert_allclose(back, gt, rtol=0, atol=tolerance(back))
    # And the other way: encode(decode(o)) == o, for offsets of the size a model predicts.
    predicted = rng.normal(0.0, 1.0, size=(50, 4))
    boxes = to_numpy(decode(predicted, anchors, variances, coords))
    again = to_numpy(encode(boxes, anchors, variances, coords))
    np.testing.assert_allclose(again, predicted, rtol=0, atol=100 * tolerance(again))


@pytest.mark.parametrize("coords", COORDS)
def test_per_anchor_variances_and_batch_axes(form, coords):
    # In a model output the variances are a (batch, n_anchors, 4) block next to the anchors.
    encode, decode, to_numpy = form
    rng = np.random.default_rng(3)
    gt = in_format(random_boxes(rng, 12), coords).reshape(2, 6, 4)
    anchors = in_format(random_boxes(rng, 12), coords).reshape(2, 6, 4)
    variances = np.broadcast_to(np.array([0.1, 0.1, 0.2, 0.2]), (2, 6, 4))
    offsets = to_numpy(encode(gt, anchors, variances, coords))
    flat = to_numpy(encode(gt.reshape(-1, 4), anchors.reshape(-1, 4), variances[0, 0], coords))
    # (XLA may round a float32 value differently in a differently shaped computation.)
    np.testing.assert_allclose(offsets.reshape(-1, 4), flat, rtol=tolerance(flat), atol=0)
    back = to_numpy(decode(offsets, anchors, variances, coords))
    np.testing.assert_allclose(back, gt, rtol=0, atol=tolerance(back))


@pytest.mark.parametrize("coords", COORDS)
def test_numpy_and_keras_forms_agree(coords):
    keras_encode, keras_decode, to_numpy = _keras_form()
    rng = np.random.default_rng(11)
    gt = in_format(random_boxes(rng, 40), coords).astype(np.float32)
    anchors = in_format(random_boxes(rng, 40), coords).astype(np.float32)
    variances = np.array([0.1, 0.1, 0.2, 0.2], dtype=np.float32)
    offsets = box_coding.encode_boxes(gt, anchors, variances, coords)
    np.testing.assert_allclose(
        to_numpy(keras_encode(gt, anchors, variances, coords)), offsets, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        to_numpy(keras_decode(offsets, anchors, variances, coords)),
        box_coding.decode_boxes(offsets, anchors, variances, coords),
        rtol=1e-6,
        atol=1e-6,
    )


def test_unknown_coords_is_a_clear_error(form):
    encode, decode, _ = form
    box = np.array([[0.5, 0.5, 0.2, 0.2]])
    with pytest.raises(ValueError, match="coords"):
        encode(box, box, np.ones(4), "xywh")
    with pytest.raises(ValueError, match="coords"):
        decode(box, box, np.ones(4), "xywh")
