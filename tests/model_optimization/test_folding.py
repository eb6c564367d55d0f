"""BatchNormalization folding (`model_optimization.folding`): hand values, which pairs fold,
whole SSD models computing the same outputs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from model_optimization.folding import fold_batch_norm, foldable_pairs
from tests.model_optimization.conftest import randomize_batchnorm


def test_folded_conv_hand_values():
    """1x1 conv, 2 -> 2 channels, then BN: kernel and bias by hand."""
    inputs = keras.Input((1, 1, 2))
    x = keras.layers.Conv2D(2, 1, name="conv")(inputs)
    x = keras.layers.BatchNormalization(epsilon=0.0, name="bn")(x)
    model = keras.Model(inputs, keras.layers.Activation("linear", name="out")(x))
    kernel = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    model.get_layer("conv").set_weights([kernel, np.array([0.5, -1.0])])
    # gamma, beta, mean, variance: scale = gamma / sqrt(var) = [2 / 2, 3 / 1] = [1, 3]
    model.get_layer("bn").set_weights(
        [np.array([2.0, 3.0]), np.array([1.0, 0.0]), np.array([0.5, 2.0]), np.array([4.0, 1.0])]
    )
    folded = fold_batch_norm(model)
    assert [layer.name for layer in folded.layers[1:]] == ["conv", "out"]
    new_kernel, new_bias = folded.get_layer("conv").get_weights()
    np.testing.assert_allclose(new_kernel.reshape(2, 2), [[1.0, 6.0], [3.0, 12.0]])
    # bias * scale + beta - mean * scale = [0.5 + 1 - 0.5, -3 + 0 - 6]
    np.testing.assert_allclose(new_bias, [1.0, -9.0])
    x = np.array([[[[1.0, 1.0]]]], dtype="float32")  # conv: [4.5, 5], BN: [(4.5-.5)/2*2+1, 9]
    np.testing.assert_allclose(folded.predict(x, verbose=0).ravel(), [5.0, 9.0], rtol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0).ravel(), [5.0, 9.0], rtol=1e-6)


def _mixed_graph() -> keras.Model:
    """Every case: folds (conv, depthwise with multiplier 2, BN without scale/center) and
    does not (conv with an activation, conv read twice, BN after an Add)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = keras.layers.BatchNormalization(scale=False, center=False, name="bn_dw")(x)
    y = keras.layers.Conv2D(8, 1, activation="relu", name="c_relu")(x)
    y = keras.layers.BatchNormalization(name="bn_relu")(y)
    z = keras.layers.Conv2D(8, 1, name="c_twice")(x)
    w = keras.layers.BatchNormalization(name="bn_twice")(z)
    s = keras.layers.Add(name="add")([y, w, z])
    s = keras.layers.BatchNormalization(name="bn_add")(s)
    outputs = keras.layers.Conv2D(2, 1, name="head")(s)
    return keras.Model(inputs, outputs)


def test_which_batch_norms_fold_and_the_outputs_stay():
    model = _mixed_graph()
    randomize_batchnorm(model, seed=1)
    assert foldable_pairs(model) == {"bn1": "c1", "bn_dw": "dw"}
    folded = fold_batch_norm(model)
    names = [layer.name for layer in folded.layers]
    assert "bn1" not in names and "bn_dw" not in names
    assert {"bn_relu", "bn_twice", "bn_add"} <= set(names)
    assert folded.get_layer("c1").use_bias and folded.get_layer("dw").use_bias
    np.testing.assert_array_equal(
        folded.get_layer("head").get_weights()[0], model.get_layer("head").get_weights()[0]
    )
    x = np.random.default_rng(0).normal(0, 1, (2, 12, 12, 3)).astype("float32")
    np.testing.assert_allclose(
        folded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5
    )


def test_sequential_model_folds_into_a_functional_one():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, name="c"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(2, name="dense"),
        ]
    )
    randomize_batchnorm(model, seed=4)
    folded = fold_batch_norm(model)
    assert [layer.name for layer in folded.layers[1:]] == ["c", "flat", "dense"]
    x = np.random.default_rng(1).normal(0, 1, (3, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        folded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5
    )


def test_nothing_to_fold_returns_the_model():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="c")(inputs))
    assert fold_batch_norm(model) is model


@pytest.mark.parametrize("name", ["ssd7", "ssdlite"])
def test_ssd_models_fold_every_batch_norm_with_the_same_outputs(name, keras_reload):
    """SSD7 (7 BNs) and SSDLite-MobileNetV2 (76): none left, same predictions (boxes and
    scores) to float rounding, and the folded model saves and loads like any other."""
    from bench.common import model_presets

    builder, preset = model_presets()[name]
    size = (96, 128, 3) if name == "ssd7" else (128, 128, 3)
    keras.utils.set_random_seed(0)
    model = builder(**{**preset, "image_size": size})
    randomize_batchnorm(model, seed=2)
    n_batch_norms = sum(
        isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers
    )
    folded = fold_batch_norm(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    assert len(folded.layers) == len(model.layers) - n_batch_norms
    images = np.random.default_rng(3).uniform(0, 255, (2, *size)).astype("float32")
    expected = model.predict(images, verbose=0)
    got = folded.predict(images, verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    keras_reload(folded, images, name=f"{name}_folded", expected=got)
