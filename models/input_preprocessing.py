"""Input preprocessing layers of the SSD models (serializable replacements of the original Lambdas).

The original builders normalised the input with ``Lambda`` layers wrapping closures, which Keras 3
cannot reload without ``custom_objects`` (or at all, with ``safe_mode``). These three small layers
do the same arithmetic, keep the original layer names in the models (``input_mean_normalization``,
``input_stddev_normalization``, ``input_channel_swap``) and save their arguments in ``get_config``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def _per_channel(value, name):
    """A JSON-able float or list of floats; raises ValueError for anything else."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return float(array)
    if array.ndim == 1 and array.size > 0:
        return [float(v) for v in array]
    raise ValueError(f"{name} must be a number or a list of per-channel numbers, got {value!r}")


def _check_channels(value, input_shape, layer_name, argument):
    channels = input_shape[-1]
    if isinstance(value, list) and channels is not None and len(value) not in (1, channels):
        raise ValueError(
            f"{layer_name}: {argument} has {len(value)} values but the input has {channels} "
            f"channels: {value}"
        )


@keras.saving.register_keras_serializable(package="ssd_keras")
class InputMeanNormalization(keras.layers.Layer):
    """Subtracts a (per-channel) mean: ``outputs = inputs - mean``.

    Args:
        mean: a number, or one number per channel (e.g. ``[123, 117, 104]`` for the VGG models).

    Input shape / output shape:
        ``(batch, height, width, channels)``, unchanged.
    """

    def __init__(self, mean, **kwargs):
        super().__init__(**kwargs)
        self.mean = _per_channel(mean, "subtract_mean")

    def build(self, input_shape):
        _check_channels(self.mean, input_shape, self.name, "subtract_mean")

    def call(self, inputs):
        return inputs - ops.convert_to_tensor(np.asarray(self.mean), dtype=inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mean": self.mean})
        return config


@keras.saving.register_keras_serializable(package="ssd_keras")
class InputStddevNormalization(keras.layers.Layer):
    """Divides by a (per-channel) standard deviation: ``outputs = inputs / stddev``.

    Args:
        stddev: a positive number, or one per channel (e.g. ``127.5`` for SSD7).

    Input shape / output shape:
        ``(batch, height, width, channels)``, unchanged.
    """

    def __init__(self, stddev, **kwargs):
        super().__init__(**kwargs)
        self.stddev = _per_channel(stddev, "divide_by_stddev")
        if np.any(np.asarray(self.stddev) == 0):
            raise ValueError(f"divide_by_stddev must not contain 0, got {self.stddev!r}")

    def build(self, input_shape):
        _check_channels(self.stddev, input_shape, self.name, "divide_by_stddev")

    def call(self, inputs):
        return inputs / ops.convert_to_tensor(np.asarray(self.stddev), dtype=inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"stddev": self.stddev})
        return config


@keras.saving.register_keras_serializable(package="ssd_keras")
class InputChannelSwap(keras.layers.Layer):
    """Reorders the channels: output channel ``i`` is input channel ``order[i]``.

    ``order=[2, 1, 0]`` turns RGB into BGR, as the ported Caffe weights expect.

    Args:
        order: a permutation of ``range(channels)``.

    Input shape / output shape:
        ``(batch, height, width, channels)``, unchanged.
    """

    def __init__(self, order, **kwargs):
        super().__init__(**kwargs)
        order = [int(i) for i in order]
        if sorted(order) != list(range(len(order))):
            raise ValueError(
                f"swap_channels must be a permutation of 0..{len(order) - 1}, got {order}"
            )
        self.order = order

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is not None and channels != len(self.order):
            raise ValueError(
                f"{self.name}: swap_channels {self.order} has {len(self.order)} entries but the "
                f"input has {channels} channels"
            )

    def call(self, inputs):
        return ops.take(inputs, self.order, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"order": list(self.order)})
        return config


def add_input_preprocessing(
    x, subtract_mean=None, divide_by_stddev=None, swap_channels=None
) -> keras.KerasTensor:
    """The original input stage: identity, then mean, stddev and channel swap where asked.

    Args:
        x: the model's input tensor ``(batch, height, width, channels)``.
        subtract_mean, divide_by_stddev, swap_channels: as in the model builders; None (or False
            for ``swap_channels``) skips the step.

    Returns:
        The preprocessed tensor, same shape.
    """
    x = keras.layers.Identity(name="identity_layer")(x)
    if subtract_mean is not None:
        x = InputMeanNormalization(subtract_mean, name="input_mean_normalization")(x)
    if divide_by_stddev is not None:
        x = InputStddevNormalization(divide_by_stddev, name="input_stddev_normalization")(x)
    if swap_channels is not None and swap_channels is not False:
        x = InputChannelSwap(swap_channels, name="input_channel_swap")(x)
    return x
