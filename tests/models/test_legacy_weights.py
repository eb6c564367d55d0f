"""The Keras 2 / original ssd_keras HDF5 weight loader, on files this test writes with h5py."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_layers import L2Normalization
from models.legacy_weights import LegacyWeightsReport, load_legacy_weights


@pytest.fixture
def ssd7(keras2):
    return keras2.ssd7(0)


@pytest.mark.parametrize("full_model", [True, False])
def test_loads_every_layer_by_name(tmp_path, keras2, ssd7, full_model):
    rng = np.random.default_rng(0)
    layers = keras2.random_layers(ssd7, rng)
    path = tmp_path / "legacy.h5"
    keras2.write_h5(path, layers, full_model=full_model)

    report = load_legacy_weights(ssd7, path)
    expected = {name: weights for name, weights in layers if weights}
    assert sorted(report.loaded) == sorted(expected)
    assert report.missing_in_file == [] and report.unused_in_file == [] and not report.mismatched
    for name, weights in expected.items():
        for variable, (_, array) in zip(ssd7.get_layer(name).weights, weights):
            np.testing.assert_array_equal(np.asarray(variable), array)


def test_report_lists_missing_unused_and_matches_by_weight_name(tmp_path, keras2, ssd7):
    rng = np.random.default_rng(1)
    layers = [(n, w) for n, w in keras2.random_layers(ssd7, rng) if n != "classes7"]
    # A layer the model does not have, and a layer whose weights are stored bias first:
    # matched by name ("bias", "kernel"), not by position.
    layers.append(("fc8", [("fc8/kernel:0", np.ones((3, 3, 4, 4), "float32"))]))
    index = next(i for i, (n, _) in enumerate(layers) if n == "conv1")
    layers[index] = ("conv1", layers[index][1][::-1])
    path = tmp_path / "partial.h5"
    keras2.write_h5(path, layers)
    before = np.asarray(ssd7.get_layer("classes7").weights[0]).copy()

    report = load_legacy_weights(ssd7, path)
    assert report.missing_in_file == ["classes7"]
    assert report.unused_in_file == ["fc8"]
    np.testing.assert_array_equal(np.asarray(ssd7.get_layer("classes7").weights[0]), before)
    conv1 = dict(layers[index][1])
    np.testing.assert_array_equal(
        np.asarray(ssd7.get_layer("conv1").kernel), conv1["conv1/kernel:0"]
    )
    np.testing.assert_array_equal(np.asarray(ssd7.get_layer("conv1").bias), conv1["conv1/bias:0"])
    text = str(report)
    assert "classes7" in text and "fc8" in text and str(path) in text


def _with_other_class_count(layers, name, n_out):
    """``layers`` with the head ``name`` replaced by one of ``n_out`` output channels."""
    result = []
    for layer_name, weights in layers:
        if layer_name == name:
            kernel = weights[0][1]
            weights = [
                (weights[0][0], np.zeros(kernel.shape[:3] + (n_out,), "float32")),
                (weights[1][0], np.zeros((n_out,), "float32")),
            ]
        result.append((layer_name, weights))
    return result


def _file_with_other_class_count(keras2, model, path, seed):
    """Writes random weights for ``model`` to ``path``, its head classes4 with 84 channels."""
    layers = keras2.random_layers(model, np.random.default_rng(seed))
    layers = _with_other_class_count(layers, "classes4", 84)
    keras2.write_h5(path, layers)
    return layers


def test_shape_mismatch_is_a_clear_error_and_assigns_nothing(tmp_path, keras2, ssd7):
    path = tmp_path / "other_classes.h5"
    _file_with_other_class_count(keras2, ssd7, path, seed=2)
    conv1_before = np.asarray(ssd7.get_layer("conv1").kernel).copy()

    with pytest.raises(ValueError, match=r"classes4.*kernel.*\(3, 3, 64, 84\).*\(3, 3, 64, 12\)"):
        load_legacy_weights(ssd7, path)
    np.testing.assert_array_equal(np.asarray(ssd7.get_layer("conv1").kernel), conv1_before)


def test_skip_mismatch_leaves_the_head_and_loads_the_rest(tmp_path, keras2, ssd7):
    path = tmp_path / "other_classes.h5"
    layers = _file_with_other_class_count(keras2, ssd7, path, seed=3)
    head_before = np.asarray(ssd7.get_layer("classes4").kernel).copy()

    report = load_legacy_weights(ssd7, path, skip_mismatch=True)
    # One entry per weight that does not fit: the kernel and the bias of classes4.
    assert [m[:2] for m in report.mismatched] == [
        ("classes4", "classes4/kernel:0"),
        ("classes4", "classes4/bias:0"),
    ]
    assert report.mismatched[0][2:] == ((3, 3, 64, 84), (3, 3, 64, 12))
    assert "classes4" not in report.loaded and "conv1" in report.loaded
    np.testing.assert_array_equal(np.asarray(ssd7.get_layer("classes4").kernel), head_before)
    conv1 = dict(dict(layers)["conv1"])
    np.testing.assert_array_equal(
        np.asarray(ssd7.get_layer("conv1").kernel), conv1["conv1/kernel:0"]
    )


def test_l2_normalization_gamma_as_the_original_named_it(tmp_path, keras2):
    """The original stored conv4_3_norm's weight as ``conv4_3_norm/conv4_3_norm_gamma:0``."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv4_3")(inputs)
    model = keras.Model(inputs, L2Normalization(gamma_init=20, name="conv4_3_norm")(x))
    gamma = np.array([1.0, 2.0, 3.0, 4.0], "float32")
    path = tmp_path / "vgg_fc_reduced_like.h5"
    keras2.write_h5(path, [("conv4_3_norm", [("conv4_3_norm/conv4_3_norm_gamma:0", gamma)])])

    report = load_legacy_weights(model, path)
    assert report.loaded == ["conv4_3_norm"] and report.missing_in_file == ["conv4_3"]
    np.testing.assert_array_equal(model.get_layer("conv4_3_norm").get_weights()[0], gamma)


def test_weight_count_mismatch_and_missing_file(tmp_path, keras2, ssd7):
    path = tmp_path / "bad.h5"
    keras2.write_h5(path, [("conv1", [("conv1/kernel:0", np.zeros((5, 5, 3, 32), "float32"))])])
    with pytest.raises(ValueError, match="conv1.*1 weights in the file.*2 in the model"):
        load_legacy_weights(ssd7, path)
    report = load_legacy_weights(ssd7, path, skip_mismatch=True)
    assert isinstance(report, LegacyWeightsReport) and report.mismatched[0][0] == "conv1"
    with pytest.raises(FileNotFoundError, match="nowhere.h5"):
        load_legacy_weights(ssd7, tmp_path / "nowhere.h5")
