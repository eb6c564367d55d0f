"""Structured (filter) pruning: channel selection, rewiring, output identity, SSD7."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from model_optimization.pruning import ConstantSparsity, prune_low_magnitude
from model_optimization.structured import (
    filter_importance,
    filter_pruning_report,
    prunable_filters,
    prune_filters,
    remove_filters,
    select_filters,
)

_np = keras.ops.convert_to_numpy


def _zero_after_bn(model, conv_name, bn_name, removed):
    """gamma = beta = 0 makes BN output exactly 0 for those channels (ELU(0) = 0, pool(0) = 0)."""
    bn = model.get_layer(bn_name)
    gamma, beta, mean, var = bn.get_weights()
    gamma[removed] = 0
    beta[removed] = 0
    bn.set_weights([gamma, beta, mean, var])


def _zero_filters(model, conv_name, removed):
    """Zero kernel and bias: the conv outputs exactly 0 there (ReLU(0) = 0)."""
    conv = model.get_layer(conv_name)
    kernel, bias = conv.get_weights()
    kernel[..., removed] = 0
    bias[removed] = 0
    conv.set_weights([kernel, bias])


def test_small_model_identity_when_removed_channels_are_zero(helpers):
    model = helpers.small_conv_model()
    helpers.randomize_batchnorm(model)
    keep = {"c1": np.array([0, 2, 3, 6]), "c2": np.arange(0, 16, 2)}
    _zero_after_bn(model, "c1", "bn1", [1, 4, 5, 7])
    _zero_filters(model, "c2", np.arange(1, 16, 2))
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")

    small = remove_filters(model, keep)
    assert small.get_layer("c1").kernel.shape == (3, 3, 3, 4)
    assert small.get_layer("bn1").gamma.shape == (4,)
    assert small.get_layer("c2").kernel.shape == (3, 3, 4, 8)
    assert small.get_layer("dense").kernel.shape == (8, 3)  # rewired through GAP
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    # the kept weights are the original ones, in order
    np.testing.assert_array_equal(
        _np(small.get_layer("c2").kernel),
        _np(model.get_layer("c2").kernel)[:, :, keep["c1"]][..., keep["c2"]],
    )
    # control: removing channels that are NOT zero changes the output
    other = remove_filters(model, {"c1": np.array([1, 4, 5, 7])})
    assert np.abs(other.predict(x, verbose=0) - model.predict(x, verbose=0)).max() > 1e-3


def test_prunable_filters_and_blocked_paths():
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same", name="b")(a)
    c = keras.layers.Add(name="add")([a, b])
    d = keras.layers.Conv2D(6, 1, name="d")(c)
    e = keras.layers.Activation("softmax", name="softmax")(d)
    f = keras.layers.Conv2D(2, 1, name="f")(e)
    model = keras.Model(inputs, f)
    status = prunable_filters(model)
    assert "several inputs" in status["a"]  # feeds the residual Add
    assert "several inputs" in status["b"]
    assert "Activation" in status["d"]  # softmax mixes channels
    assert "model output" in status["f"]
    with pytest.raises(ValueError, match="'a' cannot be pruned"):
        remove_filters(model, {"a": [0, 1]})
    with pytest.raises(ValueError, match="no layer named"):
        remove_filters(model, {"zz": [0]})
    seq = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="d1"), keras.layers.Dense(2, name="d2")]
    )
    assert prunable_filters(seq) == {
        "d1": None,
        "d2": "the channels of 'd2' reach the model output 'd2'",
    }
    with pytest.raises(ValueError, match="channel indices"):
        remove_filters(seq, {"d1": []})
    with pytest.raises(ValueError, match="channel indices"):
        remove_filters(seq, {"d1": [3]})
    assert remove_filters(seq, {"d1": [0, 2]}).get_layer("d2").kernel.shape == (2, 2)


def test_importance_criteria_hand_example():
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(3, 1, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(2, 1, name="next")(x)
    x = keras.layers.Conv2D(2, 1, name="out")(x)
    model = keras.Model(inputs, x)
    # 1x1x1x3 kernel: filter weights 0.5, -2, 1 -> L1 = |w|: [0.5, 2, 1]
    model.get_layer("conv").set_weights([np.array([0.5, -2.0, 1.0]).reshape(1, 1, 1, 3)])
    np.testing.assert_allclose(filter_importance(model, "conv", "l1"), [0.5, 2.0, 1.0])
    np.testing.assert_allclose(filter_importance(model, "conv", "l2"), [0.5, 2.0, 1.0])
    bn = model.get_layer("bn")
    bn.set_weights([np.array([3.0, -0.1, 0.2]), *bn.get_weights()[1:]])
    np.testing.assert_allclose(filter_importance(model, "conv", "bn_gamma"), [3.0, 0.1, 0.2])
    # amount 1/3 of 3 filters -> drop one: the smallest L1 is filter 0, the smallest gamma filter 1
    assert select_filters(model, 1 / 3, criterion="l1", layers=["conv"])["conv"].tolist() == [1, 2]
    assert select_filters(model, 1 / 3, criterion="bn_gamma", layers=["conv"])["conv"].tolist() == [
        0,
        2,
    ]
    # round_to=2 keeps ceil(2 / 2) * 2 = 2 ... and min_filters=3 keeps all
    assert select_filters(model, 0.6, layers=["conv"], round_to=2)["conv"].size == 2
    assert select_filters(model, 0.6, layers=["conv"], min_filters=3)["conv"].size == 3
    with pytest.raises(ValueError, match="no BatchNormalization"):
        filter_importance(model, "next", "bn_gamma")
    with pytest.raises(ValueError, match="criterion"):
        filter_importance(model, "conv", "l3")
    with pytest.raises(ValueError, match="amount"):
        select_filters(model, 1.0, layers=["conv"])


def test_refuses_models_wrapped_for_magnitude_pruning(helpers):
    pruned = prune_low_magnitude(helpers.small_conv_model(), ConstantSparsity(0.5))
    with pytest.raises(ValueError, match="strip_pruning"):
        select_filters(pruned, 0.5)


def test_l2_normalization_and_depthwise_are_rewired():
    l2norm = pytest.importorskip("keras_layers.keras_layer_L2Normalization")
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv")(inputs)
    x = l2norm.L2Normalization(gamma_init=20, name="norm")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    x = keras.layers.Conv2D(4, 1, name="head")(x)
    model = keras.Model(inputs, x)
    norm = model.get_layer("norm")
    norm.set_weights([np.linspace(5, 10, 6).astype("float32")])
    dw = model.get_layer("dw")
    dw.set_weights([w + np.float32(0.1) for w in dw.get_weights()])  # non-zero depthwise bias
    # zero channels 1 and 4 of conv: L2Normalization of a zero channel is 0 and the others keep
    # their norm, but the depthwise bias of those channels is NOT zero -> fold it in by zeroing
    _zero_filters(model, "conv", [1, 4])
    kernel, bias = dw.get_weights()
    bias.reshape(6, 2)[[1, 4]] = 0
    dw.set_weights([kernel, bias])
    small = remove_filters(model, {"conv": [0, 2, 3, 5]})
    assert small.get_layer("norm").gamma.shape == (4,)
    assert small.get_layer("dw").kernel.shape == (3, 3, 4, 2)
    assert small.get_layer("head").kernel.shape == (1, 1, 8, 4)
    x_in = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        small.predict(x_in, verbose=0), model.predict(x_in, verbose=0), atol=1e-4
    )


def test_ssd7_filter_pruning_identity_and_size(helpers, keras_reload):
    model, _ = helpers.ssd7_small()
    helpers.randomize_batchnorm(model)
    status = prunable_filters(model)
    assert [n for n, why in status.items() if why is None] == [f"conv{i}" for i in range(1, 8)]
    assert "Reshape" in status["classes4"] and "Reshape" in status["boxes7"]

    keep = select_filters(model, 0.5, criterion="bn_gamma")
    for name, idx in keep.items():
        n = model.get_layer(name).kernel.shape[-1]
        assert idx.size == n // 2
        _zero_after_bn(model, name, "bn" + name[4:], np.setdiff1d(np.arange(n), idx))
    small = remove_filters(model, keep)
    x = np.random.default_rng(0).uniform(0, 255, (2, 96, 160, 3)).astype("float32")
    expected = model.predict(x, verbose=0)
    got = small.predict(x, verbose=0)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)

    report = {r["layer"]: r for r in filter_pruning_report(model, small)}
    assert report["conv4"]["filters_after"] == 32 and report["classes4"]["filters_after"] == 24
    assert report["total"]["params_after"] < 0.4 * report["total"]["params_before"]
    keras_reload(small, x, "small", expected=got, atol=1e-6)


def test_prune_filters_then_fine_tune_runs(helpers):
    from keras_loss_function.keras_ssd_loss import SSDLoss

    model, predictor_sizes = helpers.ssd7_small()
    small = prune_filters(model, amount={"conv2": 0.5, "conv5": 0.25}, criterion="l1")
    assert small.get_layer("conv2").kernel.shape[-1] == 24
    assert small.get_layer("conv5").kernel.shape[-1] == 36
    assert small.get_layer("conv3").kernel.shape == (3, 3, 24, 64)
    images, y_true = helpers.ssd7_targets(predictor_sizes, n_images=4)
    small.compile(optimizer="adam", loss=SSDLoss().compute_loss)
    history = small.fit(images, y_true, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])


def test_ssd300_conv4_3_through_l2_normalization_identity():
    keras_ssd300 = pytest.importorskip("models.keras_ssd300")
    keras.utils.set_random_seed(0)
    model = keras_ssd300.ssd_300(**keras_ssd300.SSD300_VOC)
    status = prunable_filters(model)
    assert status["conv4_3"] is None and status["fc7"] is None
    assert status["conv4_3_norm_mbox_conf"] is not None  # heads keep the prediction layout
    # conv4_3 (ReLU) feeds pool4 and conv4_3_norm (L2Normalization) -> the two conv4_3 heads.
    # Zero filters 256..511 (kernel and bias): ReLU(0) = 0 and a zero channel does not change
    # the L2 norm of the others, so removing them is exact.
    _zero_filters(model, "conv4_3", np.arange(256, 512))
    small = remove_filters(model, {"conv4_3": np.arange(256)})
    assert small.get_layer("conv4_3_norm").gamma.shape == (256,)
    assert small.get_layer("conv4_3_norm_mbox_loc").kernel.shape[2] == 256
    assert small.get_layer("conv5_1").kernel.shape[2] == 256
    x = np.random.default_rng(0).uniform(0, 255, (1, 300, 300, 3)).astype("float32")
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(small.predict(x, verbose=0), expected, atol=1e-4, rtol=1e-4)


def _conv_bn_elu_conv(seed: int = 0):
    """1x1 conv -> BN -> ELU -> 1x1 conv: no padding borders, so folding can be checked exactly."""
    inputs = keras.Input((5, 5, 3))
    x = keras.layers.Conv2D(6, 1, name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.ELU(name="elu_a")(x)
    x = keras.layers.MaxPooling2D(1, name="pool_a")(x)
    outputs = keras.layers.Conv2D(4, 1, name="conv_b")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    bn = model.get_layer("bn_a")
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([gamma, beta, mean, np.abs(var) + 0.5])
    return model


def test_constant_removed_channels_are_folded_into_the_consumer_bias():
    """A channel whose BN gamma is 0 outputs ELU(beta), a constant: removing it must move
    ELU(beta) * kernel into the next layer's bias (issue 14: without this, 10% of the filters of a
    lightly trained SSD7 took most of its mAP). 1x1 convolutions: exact."""
    model = _conv_bn_elu_conv()
    bn = model.get_layer("bn_a")
    gamma, beta, mean, var = bn.get_weights()
    removed = [1, 4]
    gamma[removed] = 0
    beta[removed] = [0.8, -1.5]  # ELU: 0.8 and exp(-1.5) - 1
    bn.set_weights([gamma, beta, mean, var])
    x = np.random.default_rng(1).normal(size=(2, 5, 5, 3)).astype("float32")
    small = remove_filters(model, {"conv_a": [0, 2, 3, 5]})
    np.testing.assert_allclose(_np(small(x)), _np(model(x)), rtol=1e-5, atol=1e-5)


def test_contribution_criterion_uses_bn_scale_and_consumer_weights():
    model = _conv_bn_elu_conv()
    bn = model.get_layer("bn_a")
    gamma, beta, mean, var = bn.get_weights()
    gamma[:] = 1.0
    beta[:] = 0.0
    gamma[2] = 0.01  # barely varies: unimportant whatever its kernel
    bn.set_weights([gamma, beta, mean, var])
    consumer = model.get_layer("conv_b")
    kernel, bias = consumer.get_weights()
    kernel[:, :, 5, :] = 1e-3  # read with tiny weights: unimportant
    consumer.set_weights([kernel, bias])
    scores = filter_importance(model, "conv_a", "contribution")
    assert set(np.argsort(scores)[:2]) == {2, 5}
    assert filter_importance(model, "conv_a", "bn_gamma")[5] == 1.0  # bn_gamma cannot see it
