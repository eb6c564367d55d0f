"""The shared layer check: output shapes, get_config/from_config, `.keras` and `.weights.h5`."""

from __future__ import annotations

import keras
import numpy as np
import pytest


def _as_numpy(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


def check_layer(
    layer, inputs: np.ndarray, expected_shape, tmp_path, keras_reload, rtol: float = 0.0
):
    """Runs the standard checks of a Keras layer and returns its output on ``inputs``.

    1. The output has ``expected_shape`` and `compute_output_shape` agrees (batch left out).
    2. ``type(layer).from_config(layer.get_config())`` has the same config and, with the same
       weights, the same output.
    3. A model ``Input -> layer`` saved as `.keras` and reloaded with ``keras.models.load_model``
       (no ``custom_objects``, the shared ``keras_reload`` check) gives the same output; so does a
       `.weights.h5` round trip.
    """
    output = _as_numpy(layer(inputs))
    assert output.shape == tuple(expected_shape)
    declared = layer.compute_output_shape(tuple(inputs.shape))
    assert tuple(declared)[1:] == tuple(expected_shape)[1:]

    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone_output = clone(inputs)
    if layer.weights:
        clone.set_weights(layer.get_weights())
        clone_output = clone(inputs)
    np.testing.assert_allclose(_as_numpy(clone_output), output, rtol=rtol, atol=0)

    model_input = keras.Input(shape=inputs.shape[1:], batch_size=None)
    model = keras.Model(model_input, type(layer).from_config(config)(model_input))
    if layer.weights:
        model.layers[-1].set_weights(layer.get_weights())
    model_output = _as_numpy(model.predict(inputs, verbose=0))
    np.testing.assert_allclose(model_output, output, rtol=rtol, atol=0)

    reloaded = keras_reload(model, inputs, layer.name, expected=model_output)
    assert type(reloaded.layers[-1]) is type(layer)
    assert reloaded.layers[-1].get_config() == model.layers[-1].get_config()

    weights_path = tmp_path / f"{layer.name}.weights.h5"
    model.save_weights(weights_path)
    fresh = keras.Model(model_input, type(layer).from_config(config)(model_input))
    fresh.load_weights(weights_path)
    np.testing.assert_array_equal(_as_numpy(fresh.predict(inputs, verbose=0)), model_output)
    return output


@pytest.fixture
def layer_checker(tmp_path, keras_reload):
    """`check_layer` bound to the test's ``tmp_path``."""

    def run(layer, inputs, expected_shape, rtol=0.0):
        return check_layer(layer, inputs, expected_shape, tmp_path, keras_reload, rtol=rtol)

    return run
