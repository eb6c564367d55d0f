"""Small models and data shared by the model_optimization tests (all seeded, built in-process)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

# SSD7 at a small input size keeps the tests fast; the architecture is the full SSD7.
SSD7_SMALL_SIZE = (96, 160, 3)


def small_conv_model(seed: int = 0) -> keras.Model:
    """Conv -> BN -> ELU -> pool -> Conv(relu) -> GAP -> Dense: every supported pruning path."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ELU(name="elu1")(x)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(3, name="dense")(x)
    return keras.Model(inputs, outputs, name="small")


def randomize_batchnorm(model: keras.Model, seed: int = 0) -> None:
    """Give every BatchNormalization non-trivial statistics (a fresh BN is the identity);
    gamma and beta only where the layer has them (``scale``/``center``)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            gamma = [rng.uniform(0.5, 1.5, c)] if layer.scale else []
            beta = [rng.normal(0, 0.1, c)] if layer.center else []
            layer.set_weights([*gamma, *beta, rng.normal(0, 0.1, c), rng.uniform(0.5, 2.0, c)])


@pytest.fixture
def conv_data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 16, 16, 3)).astype("float32")
    y = rng.normal(size=(64, 3)).astype("float32")
    return x, y


def ssd7_small(mode: str = "training", **kwargs):
    from models.keras_ssd7 import SSD7_UDACITY, build_model

    keras.utils.set_random_seed(0)
    config = {**SSD7_UDACITY, "image_size": SSD7_SMALL_SIZE, "mode": mode, **kwargs}
    return build_model(**config, return_predictor_sizes=True)


def ssd7_targets(predictor_sizes, n_images: int, seed: int = 0):
    """Images and encoded targets for SSD7_SMALL_SIZE: a few random boxes per image."""
    from models.keras_ssd7 import SSD7_UDACITY
    from ssd_encoder_decoder.ssd_input_encoder import SSDInputEncoder

    h, w, _ = SSD7_SMALL_SIZE
    encoder = SSDInputEncoder(
        img_height=h,
        img_width=w,
        n_classes=SSD7_UDACITY["n_classes"],
        predictor_sizes=predictor_sizes,
        scales=SSD7_UDACITY["scales"],
        aspect_ratios_global=SSD7_UDACITY["aspect_ratios_global"],
        two_boxes_for_ar1=True,
        variances=SSD7_UDACITY["variances"],
        pos_iou_threshold=0.5,
        neg_iou_limit=0.3,
        normalize_coords=True,
    )
    rng = np.random.default_rng(seed)
    labels = []
    for _ in range(n_images):
        k = 3
        xmin = rng.uniform(0, w - 40, k)
        ymin = rng.uniform(0, h - 40, k)
        bw = rng.uniform(15, 40, k)
        bh = rng.uniform(15, 40, k)
        cls = rng.integers(1, SSD7_UDACITY["n_classes"] + 1, k)
        labels.append(np.stack([cls, xmin, ymin, xmin + bw, ymin + bh], 1).astype("float32"))
    images = rng.uniform(0, 255, (n_images, h, w, 3)).astype("float32")
    return images, encoder(labels).astype("float32")


# Test modules cannot import this conftest under --import-mode=importlib: hand the helpers over
# as fixtures.
@pytest.fixture(scope="session")
def helpers():
    class Helpers:
        pass

    h = Helpers()
    h.small_conv_model = small_conv_model
    h.randomize_batchnorm = randomize_batchnorm
    h.ssd7_small = ssd7_small
    h.ssd7_targets = ssd7_targets
    return h
