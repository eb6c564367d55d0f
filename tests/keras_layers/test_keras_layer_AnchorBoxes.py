"""AnchorBoxes: golden parity with the original layer, the generator, config and saving."""

import inspect

import keras
import numpy as np
import pytest

from keras_layers import AnchorBoxes
from ssd_encoder_decoder.anchor_boxes import generate_anchor_boxes_for_layer

SSD300_CONV4_3 = {
    "img_height": 300,
    "img_width": 300,
    "this_scale": 0.1,
    "next_scale": 0.2,
    "aspect_ratios": [1.0, 2.0, 0.5],
    "two_boxes_for_ar1": True,
    "this_steps": 8,
    "this_offsets": 0.5,
    "clip_boxes": False,
    "variances": [0.1, 0.1, 0.2, 0.2],
    "coords": "centroids",
    "normalize_coords": True,
}


def golden_layers(golden):
    return golden("anchors").meta["anchor_boxes_layer"]


def test_positional_arguments_keep_the_original_order():
    # Code written for the original may pass all twelve constructor arguments by position.
    assert list(inspect.signature(AnchorBoxes).parameters)[:12] == list(SSD300_CONV4_3)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["ssd300_fc7", "ssd300_conv8_2", "ssd7_anchors7"])
def test_matches_original_layer_output(golden, index):
    fixture = golden("anchors")
    case = fixture.meta["anchor_boxes_layer"][index]
    expected = fixture.npz[case["npz_key"]]
    layer = AnchorBoxes(**case["anchorboxes_kwargs"])
    output = keras.ops.convert_to_numpy(layer(np.zeros(case["input_shape"], "float32")))
    assert output.shape == tuple(case["output_shape"])
    assert layer.n_boxes == case["n_boxes"]
    np.testing.assert_allclose(output, expected, rtol=0, atol=1e-6)


def test_get_config_adds_the_keys_the_original_dropped(golden):
    for case in golden_layers(golden):
        config = AnchorBoxes(**case["anchorboxes_kwargs"]).get_config()
        assert set(case["original_get_config_keys"]) <= set(config)
        # Bug 8 of the original: without these two keys a reloaded SSD300 used 300 / 38 as step.
        assert config["this_steps"] == case["anchorboxes_kwargs"]["this_steps"]
        assert config["this_offsets"] == case["anchorboxes_kwargs"]["this_offsets"]


def test_reloaded_layer_keeps_the_step(keras_reload):
    # conv4_3 of SSD300: 38 x 38 cells with step 8 px, so the last centre is (37 + 0.5) * 8 = 300
    # px (normalised: 1.0); with the original's dropped step it would be 300 / 38 * 37.5 = 296.05.
    inputs = keras.Input((38, 38, 512))
    model = keras.Model(inputs, AnchorBoxes(**SSD300_CONV4_3, name="conv4_3_priorbox")(inputs))
    x = np.zeros((1, 38, 38, 512), "float32")
    reloaded = keras_reload(model, x, "m")
    out = keras.ops.convert_to_numpy(reloaded(x))
    np.testing.assert_allclose(out[0, -1, -1, 0, :2], [1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(
        out[0, 0, 0, 0], [0.5 * 8 / 300] * 2 + [0.1, 0.1] + [0.1, 0.1, 0.2, 0.2], atol=1e-6
    )


@pytest.mark.parametrize("coords", ["centroids", "minmax", "corners"])
@pytest.mark.parametrize("normalize_coords", [True, False])
def test_equals_the_generator(coords, normalize_coords):
    kwargs = dict(SSD300_CONV4_3, coords=coords, normalize_coords=normalize_coords, clip_boxes=True)
    layer = AnchorBoxes(**kwargs)
    output = keras.ops.convert_to_numpy(layer(np.zeros((3, 5, 7, 2), "float32")))
    generator_kwargs = {k: v for k, v in kwargs.items() if k != "variances"}
    expected = generate_anchor_boxes_for_layer(feature_map_size=(5, 7), **generator_kwargs)
    assert output.shape == (3, 5, 7, 4, 8)
    for b in range(3):
        np.testing.assert_allclose(output[b, ..., :4], expected, rtol=1e-6, atol=1e-5)
        np.testing.assert_array_equal(
            output[b, ..., 4:],
            np.broadcast_to([0.1, 0.1, 0.2, 0.2], (5, 7, 4, 4)).astype("float32"),
        )


def test_nan_input_gives_finite_anchors():
    layer = AnchorBoxes(**SSD300_CONV4_3)
    output = keras.ops.convert_to_numpy(layer(np.full((2, 3, 3, 4), np.nan, "float32")))
    assert np.isfinite(output).all()


def test_layer_checks(layer_checker):
    kwargs = dict(SSD300_CONV4_3, this_steps=[8, 10], this_offsets=[0.5, 0.25])
    layer = AnchorBoxes(**kwargs, name="priorbox")
    layer_checker(layer, np.zeros((2, 6, 5, 3), "float32"), (2, 6, 5, 4, 8))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"variances": [0.1, 0.1, 0.2]}, "variances must have 4"),
        ({"variances": [0.1, 0.0, 0.2, 0.2]}, "variances must all be positive"),
        ({"this_scale": 1.5}, "this_scale"),
        ({"aspect_ratios": [1.0, -2.0]}, "aspect_ratios"),
        ({"coords": "xywh"}, "coords"),
        ({"this_steps": [1, 2, 3]}, "this_steps"),
    ],
)
def test_bad_arguments(change, message):
    with pytest.raises(ValueError, match=message):
        AnchorBoxes(**dict(SSD300_CONV4_3, **change))


def test_unknown_feature_map_size_is_a_clear_error():
    inputs = keras.Input((None, None, 3))
    with pytest.raises(ValueError, match="feature-map height and width"):
        AnchorBoxes(**SSD300_CONV4_3)(inputs)


def test_clip_boxes_as_the_original():
    # An 80 x 80 box centred at (59.7, 40) of an 80 x 100 image: x 19.7 .. 99.7, y 0 .. 80. The
    # original moves only values >= the side (y 80 -> 79) and keeps x 99.7 in the last pixel.
    layer = AnchorBoxes(
        img_height=80,
        img_width=100,
        this_scale=1.0,
        next_scale=1.0,
        aspect_ratios=[1.0],
        two_boxes_for_ar1=False,
        this_steps=(80, 100),
        this_offsets=(0.5, 0.597),
        clip_boxes=True,
        coords="corners",
        normalize_coords=True,
    )
    output = keras.ops.convert_to_numpy(layer(np.zeros((1, 1, 1, 3), "float32")))
    np.testing.assert_allclose(output[0, 0, 0, 0, :4], [0.197, 0.0, 0.997, 79 / 80], atol=1e-6)
