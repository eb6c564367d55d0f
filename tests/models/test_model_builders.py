"""SSD300 / SSD512 / SSD7 builders: golden layer parity, anchors, preprocessing, modes, saving."""

from __future__ import annotations

import importlib.util

import keras
import numpy as np
import pytest

from models.input_preprocessing import (
    InputChannelSwap,
    InputMeanNormalization,
    InputStddevNormalization,
)
from models.keras_ssd7 import SSD7_UDACITY, build_model
from models.keras_ssd300 import SSD300_COCO, SSD300_VOC, ssd_300
from models.keras_ssd512 import SSD512_COCO, SSD512_VOC, ssd_512

BUILDERS = {"ssd300": ssd_300, "ssd512": ssd_512, "ssd7": build_model}
HAS_DECODERS = all(
    importlib.util.find_spec(f"keras_layers.keras_layer_{name}") is not None
    for name in ("DecodeDetections", "DecodeDetectionsFast")
)
needs_decoders = pytest.mark.skipif(not HAS_DECODERS, reason="decode layers not available yet")

# The original wrapped its input preprocessing in Lambda layers; ours are serializable layers.
LAMBDA_REPLACEMENTS = {
    "identity_layer": "Identity",
    "input_mean_normalization": "InputMeanNormalization",
    "input_stddev_normalization": "InputStddevNormalization",
    "input_channel_swap": "InputChannelSwap",
}


def _np(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


def _golden_model(golden, key):
    return golden("model_summary").meta["models"][key]


def _build_from_golden(entry, **overrides):
    kwargs = dict(entry["builder_kwargs"])
    builder = BUILDERS[kwargs.pop("model")]
    kwargs.update(overrides)
    return builder(**kwargs)


@pytest.fixture(scope="module")
def ssd300_training(golden):
    return _build_from_golden(_golden_model(golden, "ssd300_voc_training"))


@pytest.fixture(scope="module")
def ssd7_training(golden):
    return _build_from_golden(_golden_model(golden, "ssd7_training"))


def _check_config(layer, expected: dict):
    """The recorded Keras 2 config entries against the Keras 3 layer config."""
    config = layer.get_config()
    for key, value in expected.items():
        if key == "activation":
            assert config[key] == (value or "linear"), (layer.name, key)
        elif key == "kernel_initializer":
            assert config[key]["class_name"] == "HeNormal", layer.name
        elif key == "kernel_regularizer":
            name, factor = value
            assert config[key]["class_name"] == "L2", layer.name
            assert config[key]["config"]["l2"] == pytest.approx(factor), layer.name
        elif key == "padding" and isinstance(value, list):
            assert [list(p) for p in config[key]] == value, layer.name
        elif key == "function":
            continue
        else:
            got = config[key]
            got = list(got) if isinstance(got, tuple) else got
            assert got == value, (layer.name, key, got, value)


def _check_against_golden(model, entry):
    ours = {layer.name: layer for layer in model.layers}
    golden_layers = [g for g in entry["layers"] if g["cls"] != "InputLayer"]
    assert set(ours) - {
        layer.name for layer in model.layers if layer.__class__.__name__ == "InputLayer"
    } == {g["name"] for g in golden_layers}
    for expected in golden_layers:
        layer = ours[expected["name"]]
        cls = type(layer).__name__
        if expected["cls"] == "Lambda":
            assert cls == LAMBDA_REPLACEMENTS[expected["name"]]
        else:
            assert cls == expected["cls"], expected["name"]
        assert list(layer.output.shape) == expected["output_shape"], expected["name"]
        assert layer.count_params() == expected["params"], expected["name"]
        trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
        assert trainable == expected["trainable"], expected["name"]
        _check_config(layer, expected["config"])
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert model.count_params() == entry["total_params"]
    assert trainable == entry["trainable_params"]
    assert list(model.output.shape) == entry["output_shape"]


def test_ssd300_voc_matches_golden_summary(golden, ssd300_training):
    entry = _golden_model(golden, "ssd300_voc_training")
    _check_against_golden(ssd300_training, entry)
    assert ssd300_training.count_params() == 26_285_486


def test_ssd7_matches_golden_summary(golden, ssd7_training):
    entry = _golden_model(golden, "ssd7_training")
    _check_against_golden(ssd7_training, entry)
    assert ssd7_training.count_params() == 213_904


def test_ssd512_voc_matches_golden_summary(golden):
    entry = _golden_model(golden, "ssd512_voc_training")
    model = _build_from_golden(entry)
    _check_against_golden(model, entry)
    assert model.count_params() == 27_188_676


@needs_decoders
def test_ssd300_inference_matches_golden_summary(golden):
    entry = _golden_model(golden, "ssd300_voc_inference")
    _check_against_golden(_build_from_golden(entry), entry)


@pytest.mark.parametrize(
    "key, builder, n_anchors",
    [("ssd300_voc_training", ssd_300, 8732), ("ssd7_training", build_model, 11692)],
)
def test_predictor_sizes_match_golden(golden, key, builder, n_anchors):
    entry = _golden_model(golden, key)
    kwargs = dict(entry["builder_kwargs"])
    kwargs.pop("model")
    model, sizes = builder(**kwargs, return_predictor_sizes=True)
    assert sizes.tolist() == entry["predictor_sizes"]
    boxes = [layer.n_boxes for layer in model.layers if type(layer).__name__ == "AnchorBoxes"]
    assert int(sum(h * w * b for (h, w), b in zip(sizes, boxes))) == n_anchors


@pytest.mark.parametrize(
    "fixture_name, golden_prefix, shape",
    [("ssd300_training", "ssd300", (300, 300, 3)), ("ssd7_training", "ssd7", (300, 480, 3))],
)
def test_anchor_columns_equal_golden_anchors(request, golden, fixture_name, golden_prefix, shape):
    """The last 8 output columns are the original's anchors and variances, in the same order."""
    model = request.getfixturevalue(fixture_name)
    anchors = golden("anchors").npz
    output = _np(model.predict(np.zeros((1,) + shape, "float32"), verbose=0))[0]
    np.testing.assert_allclose(output[:, -8:-4], anchors[f"{golden_prefix}_anchors"], atol=1e-6)
    np.testing.assert_allclose(output[:, -4:], anchors[f"{golden_prefix}_variances"], atol=1e-6)
    # The class part is a softmax.
    n_scores = output.shape[1] - 12
    np.testing.assert_allclose(output[:, :n_scores].sum(-1), 1.0, rtol=1e-5)


def test_ssd300_input_preprocessing(ssd300_training):
    """Mean (123, 117, 104) is subtracted, then RGB -> BGR, before conv1_1."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(2, 300, 300, 3)).astype("float32")
    stage = keras.Model(
        ssd300_training.input, ssd300_training.get_layer("input_channel_swap").output
    )
    expected = (x - np.array([123, 117, 104], "float32"))[..., [2, 1, 0]]
    np.testing.assert_allclose(_np(stage(x)), expected, rtol=1e-6)


def test_ssd7_input_preprocessing(ssd7_training):
    x = np.random.default_rng(1).uniform(0, 255, size=(1, 300, 480, 3)).astype("float32")
    stage = keras.Model(
        ssd7_training.input, ssd7_training.get_layer("input_stddev_normalization").output
    )
    np.testing.assert_allclose(_np(stage(x)), (x - 127.5) / 127.5, rtol=1e-6, atol=1e-6)
    assert "input_channel_swap" not in [layer.name for layer in ssd7_training.layers]


@pytest.mark.parametrize(
    "layer",
    [
        InputMeanNormalization([1.0, 2.0, 3.0]),
        InputStddevNormalization(2.0),
        InputChannelSwap([2, 0, 1]),
    ],
)
def test_preprocessing_layers_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    x = np.arange(12, dtype="float32").reshape(1, 2, 2, 3)
    np.testing.assert_array_equal(_np(clone(x)), _np(layer(x)))
    assert clone.get_config() == layer.get_config()


def test_preprocessing_layers_reject_bad_arguments():
    with pytest.raises(ValueError, match="swap_channels"):
        InputChannelSwap([0, 0, 1])
    with pytest.raises(ValueError, match="divide_by_stddev"):
        InputStddevNormalization([1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="swap_channels"):
        InputChannelSwap([1, 0])(np.zeros((1, 2, 2, 3), "float32"))
    with pytest.raises(ValueError, match="subtract_mean"):
        InputMeanNormalization([1.0, 2.0])(np.zeros((1, 2, 2, 3), "float32"))


SMALL_SSD7 = dict(SSD7_UDACITY, image_size=(96, 128, 3), n_classes=2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "train"}, "mode"),
        ({"n_classes": 0}, "n_classes"),
        ({"image_size": (96, 128)}, "image_size"),
        ({"variances": [1.0, 1.0, 0.0, 1.0]}, "variances"),
        ({"l2_regularization": -1.0}, "l2_regularization"),
        ({"scales": [0.1, 0.2, 0.3]}, "scales"),
        ({"steps": [8, 16]}, "steps"),
        ({"aspect_ratios_global": None}, "aspect_ratios"),
    ],
)
def test_bad_builder_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model(**{**SMALL_SSD7, **kwargs})


def test_ssd7_keras_and_weights_round_trip(tmp_path, keras_reload):
    keras.utils.set_random_seed(0)
    model = build_model(**SMALL_SSD7)
    x = np.random.default_rng(2).uniform(0, 255, size=(2, 96, 128, 3)).astype("float32")
    expected = _np(model.predict(x, verbose=0))

    reloaded = keras_reload(model, x, "ssd7", expected=expected)
    assert [layer.name for layer in reloaded.layers] == [layer.name for layer in model.layers]

    weights = tmp_path / "ssd7.weights.h5"
    model.save_weights(weights)
    keras.utils.set_random_seed(1)
    fresh = build_model(**SMALL_SSD7)
    assert not np.array_equal(_np(fresh.predict(x, verbose=0)), expected)
    fresh.load_weights(weights)
    np.testing.assert_array_equal(_np(fresh.predict(x, verbose=0)), expected)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_compiled_model_with_ssd_loss_reloads(keras_reload):
    from keras_loss_function.keras_ssd_loss import SSDLoss

    model = build_model(**SMALL_SSD7)
    model.compile(optimizer="adam", loss=SSDLoss(neg_pos_ratio=2, alpha=0.5))
    x = np.random.default_rng(5).uniform(0, 255, size=(1, 96, 128, 3)).astype("float32")
    reloaded = keras_reload(model, x, "compiled")
    assert isinstance(reloaded.loss, SSDLoss)
    assert reloaded.loss.get_config()["neg_pos_ratio"] == 2


@needs_decoders
@pytest.mark.parametrize("mode", ["inference", "inference_fast"])
def test_inference_modes_shape_and_round_trip(keras_reload, mode):
    model = build_model(**{**SMALL_SSD7, "mode": mode, "top_k": 50, "confidence_thresh": 0.3})
    assert model.layers[-1].name == "decoded_predictions"
    x = np.random.default_rng(3).uniform(0, 255, size=(2, 96, 128, 3)).astype("float32")
    out = _np(model.predict(x, verbose=0))
    assert out.shape == (2, 50, 6)
    keras_reload(model, x, mode, expected=out)


def test_presets():
    assert SSD300_VOC["n_classes"] == 20 and SSD300_COCO["n_classes"] == 80
    assert SSD300_COCO["scales"] == [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]
    assert SSD512_VOC["scales"] == [0.07, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.05]
    assert SSD512_COCO["scales"] == [0.04, 0.1, 0.26, 0.42, 0.58, 0.74, 0.9, 1.06]
    assert len(SSD512_VOC["aspect_ratios_per_layer"]) == 7


@pytest.mark.slow
@pytest.mark.parametrize(
    "builder, preset, n_anchors, first_scale",
    [(ssd_300, SSD300_COCO, 8732, 0.07), (ssd_512, SSD512_COCO, 24564, 0.04)],
)
def test_coco_presets_build(builder, preset, n_anchors, first_scale):
    model = builder(**preset)
    assert tuple(model.output.shape) == (None, n_anchors, 81 + 12)
    assert model.get_layer("conv4_3_norm_mbox_priorbox").this_scale == first_scale


@pytest.mark.slow
def test_ssd300_keras_round_trip(tmp_path, ssd300_training):
    x = np.random.default_rng(4).uniform(0, 255, size=(1, 300, 300, 3)).astype("float32")
    expected = _np(ssd300_training.predict(x, verbose=0))
    path = tmp_path / "ssd300.keras"
    ssd300_training.save(path)
    np.testing.assert_array_equal(
        _np(keras.models.load_model(path).predict(x, verbose=0)), expected
    )
