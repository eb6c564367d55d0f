"""Tests of the one anchor generator against the original's anchors and by hand."""

import numpy as np
import pytest

from bounding_box_utils import convert_coordinates
from ssd_encoder_decoder.anchor_boxes import (
    ANCHOR_CONFIG_KEYS,
    anchor_box_sizes,
    clip_to_image,
    generate_anchor_boxes_for_layer,
    generate_anchors,
    n_boxes_per_location,
    resolve_anchor_config,
)

CONFIG_KEYS = ANCHOR_CONFIG_KEYS


def model_anchors(kwargs):
    """All anchors of a model described by the original SSDInputEncoder kwargs, ``(N, 4)``."""
    layers = resolve_anchor_config(
        len(kwargs["predictor_sizes"]), **{k: kwargs[k] for k in CONFIG_KEYS}
    )
    per_layer = generate_anchors(
        kwargs["img_height"],
        kwargs["img_width"],
        kwargs["predictor_sizes"],
        layers,
        clip_boxes=kwargs["clip_boxes"],
        normalize_coords=kwargs["normalize_coords"],
        coords=kwargs["coords"],
    )
    return np.concatenate([a.reshape(-1, 4) for a in per_layer]), layers


@pytest.mark.parametrize("name,n_anchors", [("ssd300", 8732), ("ssd512", 24564), ("ssd7", 11692)])
def test_model_anchors_match_the_original(golden, name, n_anchors):
    fixture = golden("anchors")
    config = fixture.meta["configs"][name]
    anchors, layers = model_anchors(config["encoder_kwargs"])
    assert anchors.shape == (n_anchors, 4)
    np.testing.assert_allclose(anchors, fixture.npz[f"{name}_anchors"], rtol=0, atol=1e-5)
    for layer, expected in zip(layers, config["layers"]):
        assert layer.n_boxes == expected["n_boxes"]


def test_anchor_boxes_layer_outputs_match_the_original(golden):
    """The original AnchorBoxes layer outputs, reproduced from the same kwargs."""
    fixture = golden("anchors")
    for case in fixture.meta["anchor_boxes_layer"]:
        kwargs = dict(case["anchorboxes_kwargs"])
        kwargs.pop("variances")
        _, fh, fw, _ = case["input_shape"]
        anchors = generate_anchor_boxes_for_layer(feature_map_size=(fh, fw), **kwargs)
        expected = fixture.npz[case["npz_key"]]
        assert anchors.shape == expected.shape[1:-1] + (4,)
        for batch_item in expected:
            np.testing.assert_allclose(anchors, batch_item[..., :4], rtol=0, atol=1e-5)


def test_layer_details_match_the_original(golden):
    """Box sizes in pixels and centres of every layer, from the fixture's per-layer table."""
    fixture = golden("anchors")
    for config in fixture.meta["configs"].values():
        kwargs = config["encoder_kwargs"]
        for layer, expected in zip(
            resolve_anchor_config(
                len(kwargs["predictor_sizes"]), **{k: kwargs[k] for k in CONFIG_KEYS}
            ),
            config["layers"],
        ):
            sizes = anchor_box_sizes(
                kwargs["img_height"],
                kwargs["img_width"],
                layer.this_scale,
                layer.next_scale,
                layer.aspect_ratios,
                layer.two_boxes_for_ar1,
            )
            np.testing.assert_allclose(sizes, expected["box_wh_px_in_box_order"], atol=1e-9)
            pixels = generate_anchor_boxes_for_layer(
                kwargs["img_height"],
                kwargs["img_width"],
                expected["feature_map_hw"],
                layer.this_scale,
                layer.next_scale,
                layer.aspect_ratios,
                layer.two_boxes_for_ar1,
                layer.this_steps,
                layer.this_offsets,
                normalize_coords=False,
            )
            np.testing.assert_allclose(pixels[:, 0, 0, 1], expected["centers_cy_px"], atol=1e-9)


def test_first_ssd300_anchors_by_hand():
    # conv4_3: 38x38 cells, step 8, offset 0.5 -> first centre (4, 4) px = 4/300 normalised.
    # Boxes: ar 1 -> 0.1*300 = 30 px; extra ar 1 -> sqrt(0.1*0.2)*300 = 42.43 px;
    # ar 2 -> 30*sqrt(2) x 30/sqrt(2); ar 0.5 -> the transpose.
    anchors = generate_anchor_boxes_for_layer(
        img_height=300, img_width=300, feature_map_size=(38, 38), this_scale=0.1, next_scale=0.2,
        aspect_ratios=[1.0, 2.0, 0.5], two_boxes_for_ar1=True, this_steps=8, this_offsets=0.5,
    )  # fmt: skip
    c = 4 / 300
    expected = [
        [c, c, 0.1, 0.1],
        [c, c, np.sqrt(0.02), np.sqrt(0.02)],
        [c, c, 0.1 * np.sqrt(2), 0.1 / np.sqrt(2)],
        [c, c, 0.1 / np.sqrt(2), 0.1 * np.sqrt(2)],
    ]
    np.testing.assert_allclose(anchors[0, 0], expected, atol=1e-12)
    # The last cell's centre: (0.5 + 37) * 8 = 300 px -> 1.0.
    np.testing.assert_allclose(anchors[-1, -1, 0, :2], [1.0, 1.0], atol=1e-12)


def test_steps_and_offsets_accept_pairs_and_numpy_numbers():
    """The original crashed on numpy integer steps."""
    layer = dict(
        img_height=300, img_width=480, feature_map_size=(10, 16), this_scale=0.2, next_scale=0.3
    )
    base = generate_anchor_boxes_for_layer(**layer, this_steps=30, this_offsets=0.5)
    for steps in (np.int64(30), np.float32(30), (30, 30), np.array([30, 30])):
        for offsets in (np.float64(0.5), (0.5, 0.5)):
            got = generate_anchor_boxes_for_layer(**layer, this_steps=steps, this_offsets=offsets)
            np.testing.assert_array_equal(got, base)
    # Separate (h, w) steps: rows 20 px apart, columns 40 px apart, first centres at 0.25 of a step.
    pixels = generate_anchor_boxes_for_layer(
        **dict(layer, feature_map_size=(3, 4)),
        this_steps=(20, 40),
        this_offsets=(0.25, 0.25),
        normalize_coords=False,
    )
    np.testing.assert_allclose(pixels[:, 0, 0, 1], [5, 25, 45])
    np.testing.assert_allclose(pixels[0, :, 0, 0], [10, 50, 90, 130])


def test_default_steps_follow_the_feature_map():
    # SSD7's 37x60 map at 300x480: step 300/37 in y, 8 in x.
    pixels = generate_anchor_boxes_for_layer(
        img_height=300, img_width=480, feature_map_size=(37, 60), this_scale=0.08, next_scale=0.16,
        normalize_coords=False,
    )  # fmt: skip
    np.testing.assert_allclose(pixels[1, 0, 0, 1] - pixels[0, 0, 0, 1], 300 / 37)
    np.testing.assert_allclose(pixels[0, 1, 0, 0] - pixels[0, 0, 0, 0], 8.0)


@pytest.mark.parametrize("coords", ["corners", "minmax"])
def test_output_formats_are_conversions_of_centroids(coords):
    kwargs = dict(
        img_height=300, img_width=300, feature_map_size=(5, 5), this_scale=0.5, next_scale=0.7
    )
    centroids = generate_anchor_boxes_for_layer(coords="centroids", **kwargs)
    other = generate_anchor_boxes_for_layer(coords=coords, **kwargs)
    np.testing.assert_allclose(
        other, convert_coordinates(centroids, 0, f"centroids2{coords}"), atol=1e-12
    )


def test_clip_boxes_keeps_every_corner_inside_the_image():
    layer = dict(
        img_height=300, img_width=400, feature_map_size=(3, 3), this_scale=0.9, next_scale=1.0,
        aspect_ratios=[1.0, 2.0, 0.5], normalize_coords=False, coords="corners",
    )  # fmt: skip
    corners = generate_anchor_boxes_for_layer(**layer, clip_boxes=True)
    assert corners[..., [0, 2]].min() >= 0 and corners[..., [0, 2]].max() <= 399
    assert corners[..., [1, 3]].min() >= 0 and corners[..., [1, 3]].max() <= 299
    unclipped = generate_anchor_boxes_for_layer(**layer)
    assert unclipped[..., 0].min() < 0  # the clip did something


def test_clip_to_image_moves_only_what_the_original_moves():
    # The original: x >= W -> W - 1, x < 0 -> 0 (y likewise with H); a value in [W - 1, W) stays.
    # Image 80 high, 100 wide.
    corners = np.array(
        [
            [-0.5, -1e-9, 99.0, 79.5],  # 99.0 and 79.5 are in [W-1, W) / [H-1, H): unchanged
            [0.0, 0.0, 99.999, 80.0],  # 80.0 == H -> 79
            [100.0, 80.0, 150.0, 200.0],  # everything past the border -> W - 1 / H - 1
            [10.0, 20.0, 30.0, 40.0],  # inside: unchanged
        ]
    )
    clipped = clip_to_image(corners.copy(), img_height=80, img_width=100)
    np.testing.assert_array_equal(
        clipped,
        [[0, 0, 99.0, 79.5], [0, 0, 99.999, 79], [99, 79, 99, 79], [10, 20, 30, 40]],
    )


def test_clip_boxes_leaves_anchor_corners_in_the_last_pixel_alone():
    # One 99.5 x 99.5 box (scale 1.24375 of min(80, 100) = 80) centred at (50, 40) of an 80 x 100
    # image: x 0.25 .. 99.75, y -9.75 .. 89.75. The original keeps xmax = 99.75 (< W = 100) and
    # moves ymin -> 0, ymax -> 79; np.clip(.., 0, W - 1) would have moved xmax to 99.
    kwargs = dict(
        img_height=80,
        img_width=100,
        feature_map_size=(1, 1),
        this_scale=1.24375,
        next_scale=1.3,
        aspect_ratios=[1.0],
        two_boxes_for_ar1=False,
        clip_boxes=True,
    )
    corners = generate_anchor_boxes_for_layer(normalize_coords=False, coords="corners", **kwargs)
    np.testing.assert_allclose(corners[0, 0, 0], [0.25, 0.0, 99.75, 79.0], atol=1e-12)
    # Clipping comes before normalising and before the conversion to centroids.
    normalised = generate_anchor_boxes_for_layer(normalize_coords=True, **kwargs)
    np.testing.assert_allclose(normalised[0, 0, 0], [0.5, 79 / 160, 0.995, 79 / 80], atol=1e-12)


def test_n_boxes_per_location():
    assert n_boxes_per_location([1.0, 2.0, 0.5]) == 4
    assert n_boxes_per_location([1.0, 2.0, 0.5], two_boxes_for_ar1=False) == 3
    assert n_boxes_per_location([1.0, 2.0, 0.5, 3.0, 1 / 3]) == 6
    assert n_boxes_per_location([0.5, 2.0]) == 2
    assert n_boxes_per_location(np.array([0.5, 1, 2])) == 4


def test_scales_come_from_min_and_max_when_not_given():
    layers = resolve_anchor_config(4, min_scale=0.1, max_scale=0.9)
    np.testing.assert_allclose([layer.this_scale for layer in layers], [0.1, 0.3, 0.5, 0.7])
    np.testing.assert_allclose([layer.next_scale for layer in layers], [0.3, 0.5, 0.7, 0.9])
    assert all(layer.aspect_ratios == (0.5, 1.0, 2.0) for layer in layers)


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        (dict(scales=[0.1, 0.2]), "scales"),
        (dict(min_scale=None, max_scale=None), "min_scale"),
        (dict(min_scale=0.9, max_scale=0.1), "min_scale"),
        (dict(aspect_ratios_per_layer=[[1.0]]), "aspect_ratios_per_layer"),
        (dict(aspect_ratios_global=None), "aspect_ratios"),
        (dict(steps=[8, 16]), "steps"),
        (dict(offsets=[0.5]), "offsets"),
    ],
)
def test_bad_config_raises_value_error_naming_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        resolve_anchor_config(3, **kwargs)


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        (dict(this_steps=(1, 2, 3)), "this_steps"),
        (dict(this_offsets=[[0.5]]), "this_offsets"),
        (dict(coords="xywh"), "coords"),
        (dict(aspect_ratios=[1.0, -2.0]), "aspect ratios"),
        (dict(feature_map_size=(0, 3)), "feature_map_size"),
    ],
)
def test_bad_layer_arguments_raise_value_errors(kwargs, argument):
    call = dict(
        img_height=300, img_width=300, feature_map_size=(3, 3), this_scale=0.2, next_scale=0.3
    )
    call.update(kwargs)
    with pytest.raises(ValueError, match=argument):
        generate_anchor_boxes_for_layer(**call)
