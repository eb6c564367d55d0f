"""The `L2Normalization` Keras layer (SSD's ``conv4_3_norm``, Liu et al. / ParseNet)."""

from __future__ import annotations

import keras
from keras import ops

EPSILON = 1e-12
"""Floor of the squared norm, as in TF1's ``l2_normalize`` used by the original."""


@keras.saving.register_keras_serializable(package="ssd_keras")
class L2Normalization(keras.layers.Layer):
    """L2-normalises every pixel over the channels and rescales each channel by a learned factor.

    ``out = x / sqrt(max(sum_c x^2, 1e-12)) * gamma``: the floor is applied to the squared norm (TF1
    ``l2_normalize`` semantics, like the original), so an almost-zero pixel is scaled by 1e6 rather
    than divided by its own tiny norm. ``gamma`` has one trainable value per channel.

    Args:
        gamma_init: initial value of every channel's scale (20 in SSD).
        **kwargs: standard layer arguments (``name``, ``dtype``, ...).

    Input shape:
        ``(batch, ..., channels)``, channels-last (4D ``(batch, h, w, channels)`` in SSD).

    Output shape:
        Same as the input.

    Example:
        >>> layer = L2Normalization(gamma_init=20, name="conv4_3_norm")
        >>> tuple(layer(np.ones((1, 38, 38, 512), "float32")).shape)
        (1, 38, 38, 512)
    """

    def __init__(self, gamma_init=20, **kwargs):
        super().__init__(**kwargs)
        self.gamma_init = float(gamma_init)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"L2Normalization needs a known channel dimension, got input shape {input_shape}"
            )
        self.gamma = self.add_weight(
            name="gamma",
            shape=(channels,),
            initializer=keras.initializers.Constant(self.gamma_init),
            trainable=True,
        )

    def call(self, inputs):
        squared_norm = ops.sum(ops.square(inputs), axis=-1, keepdims=True)
        inverse_norm = ops.rsqrt(ops.maximum(squared_norm, EPSILON))
        return inputs * inverse_norm * ops.cast(self.gamma, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"gamma_init": self.gamma_init})
        return config
