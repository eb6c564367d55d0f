"""`split_ssd_constants` finds the anchors of every builder's graph, not only SSD7's layer names."""

from __future__ import annotations

import keras
import numpy as np

from model_optimization.export import split_ssd_constants
from models.keras_ssdlite import ssdlite


def test_ssdlite_graph_splits_into_core_and_exact_anchors():
    keras.utils.set_random_seed(0)
    model = ssdlite(image_size=(64, 96, 3), n_classes=2, alpha=0.35)
    core, constants = split_ssd_constants(model)
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 96, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(images))
    classes, offsets = (keras.ops.convert_to_numpy(t) for t in core(images))
    tiled = np.broadcast_to(constants, (2, *constants.shape))
    np.testing.assert_array_equal(np.concatenate([classes, offsets, tiled], -1), expected)
    assert constants.shape == (expected.shape[1], 8)
