"""SSDLite builder: anchors and shapes per configuration, the encoder agrees, modes, save/load,
a short fit learns, and MobileNet weights files load by layer name (nothing downloaded)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_loss_function.keras_ssd_loss import SSDLoss
from models.keras_ssdlite import (
    SOURCE_NAMES,
    SSDLITE320_MOBILENETV2,
    SSDLITE320_MOBILENETV3_LARGE,
    ssdlite,
)
from ssd_encoder_decoder.ssd_input_encoder import SSDInputEncoder

SMALL = {"image_size": (96, 128, 3), "n_classes": 2, "alpha": 0.35}
BACKBONES = ["mobilenet_v2", "mobilenet_v3_large"]


def _np(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


def _images(n, size=SMALL["image_size"], seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, *size)).astype("float32")


def _encoder(predictor_sizes, image_size, n_classes, preset=SSDLITE320_MOBILENETV2):
    keys = ("scales", "aspect_ratios_per_layer", "two_boxes_for_ar1", "steps", "offsets")
    return SSDInputEncoder(
        img_height=image_size[0],
        img_width=image_size[1],
        n_classes=n_classes,
        predictor_sizes=predictor_sizes,
        variances=preset["variances"],
        pos_iou_threshold=0.5,
        neg_iou_limit=0.5,
        **{k: preset[k] for k in keys},
    )


@pytest.mark.parametrize("preset", [SSDLITE320_MOBILENETV2, SSDLITE320_MOBILENETV3_LARGE])
def test_presets_320_anchor_count_and_predictor_sizes(preset):
    model, sizes = ssdlite(**preset, return_predictor_sizes=True)
    # 6 boxes per cell on 20x20, 10x10, 5x5, 3x3, 2x2, 1x1 maps: 6 * 539 = 3234.
    assert sizes.tolist() == [[20, 20], [10, 10], [5, 5], [3, 3], [2, 2], [1, 1]]
    assert tuple(model.output.shape) == (None, 3234, 21 + 12)
    assert model.input.shape[1:] == (320, 320, 3)
    assert tuple(model.get_layer("stride16_mbox_conf").output.shape) == (None, 20, 20, 6 * 21)
    assert model.get_layer("extra4").output.shape[1:3] == (1, 1)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_small_config_shapes_match_the_encoder(backbone):
    keras.utils.set_random_seed(0)
    model, sizes = ssdlite(**SMALL, backbone=backbone, return_predictor_sizes=True)
    # 96x128: stride 16 -> 6x8, stride 32 -> 3x4, then 'same' stride-2 layers 2x2, 1x1, 1x1, 1x1.
    assert sizes.tolist() == [[6, 8], [3, 4], [2, 2], [1, 1], [1, 1], [1, 1]]
    n_anchors = 6 * (48 + 12 + 4 + 1 + 1 + 1)
    assert tuple(model.output.shape) == (None, n_anchors, 3 + 12)
    encoder = _encoder(sizes, SMALL["image_size"], SMALL["n_classes"])
    template = encoder.generate_encoding_template(1)
    assert template.shape[1:] == tuple(model.output.shape[1:])
    # The model's anchor and variance columns are the encoder's, anchor by anchor.
    out = _np(model.predict(_images(1), verbose=0))
    np.testing.assert_allclose(out[0, :, -8:], template[0, :, -8:], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out[0, :, :3].sum(axis=-1), 1.0, rtol=1e-5)


def test_layer_names_are_documented_ones():
    model = ssdlite(**SMALL)
    names = {layer.name for layer in model.layers}
    for source in SOURCE_NAMES:
        for head in ("conf", "loc"):
            assert f"{source}_mbox_{head}" in names
            assert f"{source}_mbox_{head}_depthwise_bn" in names
        assert f"{source}_mbox_priorbox" in names
    for k in range(1, 5):
        assert {f"extra{k}_expand", f"extra{k}_depthwise", f"extra{k}_pointwise", f"extra{k}"} <= (
            names
        )
    assert {"block_13_expand_relu", "out_relu", "input_mean_normalization", "predictions"} <= names


@pytest.mark.parametrize(
    "backbone", ["mobilenet_v2", pytest.param("mobilenet_v3_large", marks=pytest.mark.slow)]
)
def test_keras_save_load_without_custom_objects(tmp_path, keras_reload, backbone):
    keras.utils.set_random_seed(1)
    model = ssdlite(**SMALL, backbone=backbone)
    x = _images(2, seed=1)
    expected = _np(model.predict(x, verbose=0))
    reloaded = keras_reload(model, x, "ssdlite", expected=expected, atol=1e-6)
    # keras.applications builds its BatchNorms with momentum 0.999; SSDLite sets all to 0.99.
    momenta = {
        layer.momentum
        for layer in reloaded.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }
    assert momenta == {0.99}

    weights = tmp_path / "ssdlite.weights.h5"
    model.save_weights(weights)
    keras.utils.set_random_seed(2)
    fresh = ssdlite(**SMALL, backbone=backbone)
    fresh.load_weights(weights)
    np.testing.assert_allclose(_np(fresh.predict(x, verbose=0)), expected, atol=1e-6)


@pytest.mark.parametrize("mode", ["inference", "inference_fast"])
def test_inference_modes(mode):
    model = ssdlite(**SMALL, mode=mode, top_k=20, confidence_thresh=0.3)
    assert model.layers[-1].name == "decoded_predictions"
    assert _np(model.predict(_images(2), verbose=0)).shape == (2, 20, 6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_classes": None}, "n_classes is required"),
        ({"backbone": "resnet50"}, "backbone must be one of"),
        ({"alpha": 0.0}, "alpha must be > 0"),
        ({"image_size": (16, 128, 3)}, "height, width >= 32"),
        ({"backbone_weights": 3}, "backbone_weights must be None, 'imagenet' or"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ssdlite(**{**SMALL, **kwargs})


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.weights.h5"):
        ssdlite(**SMALL, backbone_weights=tmp_path / "nope.weights.h5")


def _drawn_batch(encoder, rng, n_images=4):
    """Images with one bright rectangle each (class 1 red, class 2 blue), encoded targets."""
    height, width, _ = SMALL["image_size"]
    images = np.full((n_images, height, width, 3), 40, dtype="float32")
    labels = []
    for i in range(n_images):
        class_id = 1 + i % 2
        w, h = rng.integers(30, 60), rng.integers(30, 60)
        x0, y0 = rng.integers(0, width - w), rng.integers(0, height - h)
        images[i, y0 : y0 + h, x0 : x0 + w] = (230, 40, 40) if class_id == 1 else (40, 40, 230)
        labels.append(np.array([[class_id, x0, y0, x0 + w, y0 + h]], dtype="float64"))
    return images, encoder(labels).astype("float32")


@pytest.mark.slow
def test_30_step_fit_lowers_the_loss():
    keras.utils.set_random_seed(0)
    model, sizes = ssdlite(**SMALL, return_predictor_sizes=True)
    encoder = _encoder(sizes, SMALL["image_size"], SMALL["n_classes"])
    images, y_true = _drawn_batch(encoder, np.random.default_rng(0))
    assert y_true[..., 1:3].sum() >= 4  # every image has a matched anchor
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=SSDLoss(neg_pos_ratio=3, alpha=1.0))
    history = model.fit(images, y_true, batch_size=4, epochs=30, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 30 and np.all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses


APPLICATIONS = {
    "mobilenet_v2": keras.applications.MobileNetV2,
    "mobilenet_v3_large": keras.applications.MobileNetV3Large,
}


@pytest.mark.parametrize(
    "backbone, include_top",
    [("mobilenet_v2", False), ("mobilenet_v2", True), ("mobilenet_v3_large", False)],
)
def test_backbone_weights_file_loads_every_backbone_layer(tmp_path, backbone, include_top):
    extra = {"include_preprocessing": False} if backbone == "mobilenet_v3_large" else {}
    keras.utils.set_random_seed(3)
    source = APPLICATIONS[backbone](
        input_shape=(224, 224, 3), include_top=include_top, weights=None, alpha=0.35, **extra
    )
    # Non-trivial BatchNorm statistics, so that a copied moving mean/variance shows.
    rng = np.random.default_rng(3)
    for layer in source.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])
    path = tmp_path / f"{backbone}.weights.h5"
    source.save_weights(path)

    keras.utils.set_random_seed(4)
    model = ssdlite(**SMALL, backbone=backbone, backbone_weights=path)
    n_checked = 0
    for layer in source.layers:
        if not layer.weights or layer.name in ("predictions", "Logits", "Conv_2"):
            continue
        for got, want in zip(model.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(got, want, err_msg=layer.name)
        n_checked += 1
    assert n_checked > 50
    # The classifier of an include_top file is not SSD's "predictions" concatenation.
    assert not model.get_layer("predictions").weights


def test_weights_of_another_application_are_refused(tmp_path):
    keras.utils.set_random_seed(5)
    other = keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), include_top=False, weights=None, alpha=0.5
    )
    path = tmp_path / "alpha05.weights.h5"
    other.save_weights(path)
    with pytest.raises(ValueError, match="alpha05.weights.h5"):
        ssdlite(**SMALL, backbone_weights=path)


def test_weight_sampling_keeps_the_logits_of_the_kept_classes():
    from misc_utils import sample_ssd_weights

    keras.utils.set_random_seed(6)
    old = ssdlite(**SMALL)  # background, a, b
    new = ssdlite(**{**SMALL, "n_classes": 1})
    report = sample_ssd_weights(old, ["background", "a", "b"], ["background", "b"], new_model=new)
    assert report.n_classes == 1
    conf_layers = [f"{s}_mbox_conf" for s in SOURCE_NAMES]
    x = _images(1, seed=6)
    old_logits = keras.Model(old.input, [old.get_layer(n).output for n in conf_layers])(x)
    new_logits = keras.Model(new.input, [new.get_layer(n).output for n in conf_layers])(x)
    for o, n in zip(old_logits, new_logits):
        o = _np(o).reshape(*o.shape[:3], 6, 3)  # (batch, h, w, box, class)
        n = _np(n).reshape(*n.shape[:3], 6, 2)
        np.testing.assert_allclose(n, o[..., [0, 2]], rtol=1e-5, atol=1e-6)
