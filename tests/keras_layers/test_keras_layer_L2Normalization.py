"""L2Normalization: golden parity with the original, hand-checked values, config and saving."""

import keras
import numpy as np

from keras_layers import L2Normalization


def test_matches_original(golden):
    fixture = golden("l2_normalization").npz
    layer = L2Normalization(gamma_init=20)
    output = keras.ops.convert_to_numpy(layer(fixture["x"]))
    np.testing.assert_allclose(output, fixture["out"], rtol=1e-5)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.gamma), fixture["gamma"])


def test_edge_pixels_match_original(golden):
    # Pixel 0 all zeros -> 0; pixel 1 all 1e-7 (squared norm 8e-14 under the 1e-12 floor) ->
    # 1e-7 / 1e-6 * 20 = 2; pixel 2 a single 1e-3 -> 20 in that channel.
    fixture = golden("l2_normalization").npz
    output = keras.ops.convert_to_numpy(L2Normalization(gamma_init=20)(fixture["x_edge"]))
    np.testing.assert_allclose(output, fixture["out_edge"], rtol=1e-5)
    np.testing.assert_allclose(output[0, 0, 1], np.full(8, 2.0), rtol=1e-5)


def test_hand_checked_pixel():
    # (3, 4) has norm 5, so with gamma 10 the pixel becomes (6, 8).
    output = L2Normalization(gamma_init=10)(np.array([[[[3.0, 4.0]]]], "float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(output), [[[[6.0, 8.0]]]], rtol=1e-6)


def test_gamma_is_trainable_per_channel():
    layer = L2Normalization(gamma_init=20)
    layer.build((None, 4, 4, 16))
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(16,)]


def test_layer_checks(layer_checker):
    rng = np.random.default_rng(0)
    layer = L2Normalization(gamma_init=20, name="conv4_3_norm")
    layer.build((None, 4, 5, 6))
    layer.gamma.assign(rng.uniform(1, 30, 6).astype("float32"))  # not the initial value
    inputs = rng.normal(size=(2, 4, 5, 6)).astype("float32")
    layer_checker(layer, inputs, (2, 4, 5, 6), rtol=1e-6)
