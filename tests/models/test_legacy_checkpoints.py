"""Checkpoints of the pruning fork (TensorFlow model-optimization toolkit) and of the original
notebooks (Keras 2 full models), on files this test writes with h5py in exactly their layout."""

from __future__ import annotations

import json

import h5py
import keras
import numpy as np
import pytest

from model_optimization.pruning import (
    PolynomialDecay,
    UpdatePruningStep,
    magnitude_mask,
    prune_low_magnitude,
    pruning_wrappers,
)
from models.legacy_weights import (
    load_legacy_weights,
    optimizer_from_training_config,
    pruning_schedules_from_h5,
    resume_from_h5,
)

FILE_SPARSITY = 0.5
TOOLKIT_STEP = 50  # the toolkit's pruning_step after 50 training steps
# A notebook's Keras 2.1 Adam (ssd7_training.ipynb: Adam(lr=0.001, ..., epsilon=1e-08, decay=0.0)).
KERAS21_TRAINING_CONFIG = {
    "optimizer_config": {
        "class_name": "Adam",
        "config": {
            "lr": 0.0005,
            "beta_1": 0.9,
            "beta_2": 0.999,
            "epsilon": 1e-08,
            "decay": 0.0,
            "amsgrad": False,
        },
    },
    "loss": "compute_loss",
    "metrics": [],
    "sample_weight_mode": None,
    "loss_weights": None,
}
# The fork's tf.keras Adam.
TF_KERAS_TRAINING_CONFIG = {
    "optimizer_config": {
        "class_name": "Adam",
        "config": {
            "name": "Adam",
            "learning_rate": 0.001,
            "decay": 0.0,
            "beta_1": 0.9,
            "beta_2": 0.999,
            "epsilon": 1e-07,
            "amsgrad": False,
        },
    },
    "loss": "compute_loss",
    "metrics": None,
    "weighted_metrics": None,
    "loss_weights": None,
}


def fork_layers(keras2, model, rng, wrapper="prune"):
    """The fork's layer groups for ``model``'s layers: every Conv2D wrapped
    (``prune_low_magnitude_<name>``: ``<name>/kernel:0``, ``<name>/bias:0``,
    ``prune_low_magnitude_<name>/mask:0``, ``.../threshold:0``, ``.../pruning_step:0``, the kernel
    stored multiplied by the mask; or ``quant_<name>`` with quantiser variables), other layers
    plain. Returns the groups and ``{name: (stored kernel, bias, mask)}``."""
    layers, conv = [], {}
    if wrapper == "quant":
        layers.append(
            (
                "quantize_layer",
                [
                    ("quantize_layer/quantize_layer_min:0", np.float32(-1)),
                    ("quantize_layer/quantize_layer_max:0", np.float32(1)),
                    ("quantize_layer/optimizer_step:0", np.int32(50)),
                ],
            )
        )
    for layer in model.layers:
        kind = type(layer).__name__
        if kind != "Conv2D":
            # layers without weights are listed too
            layers.append((layer.name, keras2.random_weights(layer, rng)))
            continue
        kernel = rng.normal(size=layer.kernel.shape).astype("float32")
        bias = rng.normal(size=layer.bias.shape).astype("float32")
        mask = magnitude_mask(kernel, FILE_SPARSITY)
        kernel = kernel * mask
        conv[layer.name] = (kernel, bias, mask)
        inner = [(f"{layer.name}/kernel:0", kernel), (f"{layer.name}/bias:0", bias)]
        if wrapper == "prune":
            group = f"prune_low_magnitude_{layer.name}"
            own = [
                (f"{group}/mask:0", mask),
                (f"{group}/threshold:0", np.float32(0.1)),
                (f"{group}/pruning_step:0", np.int64(TOOLKIT_STEP)),
            ]
        else:
            group = f"quant_{layer.name}"
            own = [
                (f"{group}/optimizer_step:0", np.int32(TOOLKIT_STEP)),
                (f"{group}/kernel_min:0", np.float32(-1)),
                (f"{group}/kernel_max:0", np.float32(1)),
                (f"{group}/post_activation_min:0", np.float32(-6)),
                (f"{group}/post_activation_max:0", np.float32(6)),
            ]
        layers.append((group, inner + own))
    return layers, conv


def keras2_adam_state(keras2, model, rng, name_style):
    """Keras 2 ``optimizer_weights`` of Adam for ``model``: ``[iterations] + m's + v's`` in the
    order of the layers' trainable weights; Keras 2.1 adds a ``(1,)`` vhat per weight and names
    them ``training/Adam/Variable_<i>:0``, tf.keras names them ``Adam/<layer>/<weight>/m:0``."""
    inner = [layer.layer if hasattr(layer, "pruning_step") else layer for layer in model.layers]
    trainable = [
        (layer.name, n) for layer in inner for n in keras2.names.get(type(layer).__name__, [])[:2]
    ]
    shapes = {(layer.name, v.name): tuple(v.shape) for layer in inner for v in layer.weights}
    shapes = {key: shapes[key] for key in trainable}
    ms = {key: rng.normal(size=shape).astype("float32") for key, shape in shapes.items()}
    vs = {key: rng.uniform(0, 1, size=shape).astype("float32") for key, shape in shapes.items()}
    if name_style == "keras21":
        arrays = [ms[k] for k in trainable] + [vs[k] for k in trainable]
        arrays += [np.zeros(1, "float32") for _ in trainable]
        names = ["Adam/iterations:0"] + [
            "training/Adam/Variable:0" if i == 0 else f"training/Adam/Variable_{i}:0"
            for i in range(len(arrays))
        ]
        state = list(zip(names, [np.int64(TOOLKIT_STEP)] + arrays))
    else:
        state = [("Adam/iter:0", np.int64(TOOLKIT_STEP))]
        state += [(f"Adam/{layer}/{w}/m:0", ms[(layer, w)]) for layer, w in trainable]
        state += [(f"Adam/{layer}/{w}/v:0", vs[(layer, w)]) for layer, w in trainable]
    return state, ms, vs


def with_fork_schedule(model):
    # Sparsity 0.5 -> 0.8 over steps 0..100, masks updated every 10 steps.
    schedule = PolynomialDecay(0.5, 0.8, begin_step=0, end_step=100, frequency=10)
    return prune_low_magnitude(model, schedule)


def training_batch(model, seed=0, batch_size=2):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(batch_size, 64, 96, 3)).astype("float32")
    n_anchors, width = model.output_shape[1:]
    y = np.zeros((batch_size, n_anchors, width), "float32")
    y[:, :, 0] = 1.0
    positives = rng.choice(n_anchors, size=6, replace=False)
    y[:, positives, 0] = 0.0
    y[:, positives, 1] = 1.0
    y[:, positives, 3:7] = rng.normal(size=(batch_size, 6, 4))
    return x, y


def kernel_sparsity(model):
    return {
        w.layer.name: float(np.mean(np.asarray(w.masks[0]) == 0)) for w in pruning_wrappers(model)
    }


@pytest.fixture(scope="module")
def fork_file(tmp_path_factory, keras2):
    path = tmp_path_factory.mktemp("fork") / "ssd7_pruned_fork.h5"
    layers, conv = fork_layers(keras2, keras2.ssd7(1), np.random.default_rng(0))
    keras2.write_full_model(path, layers)
    return path, conv


def test_fork_file_loads_into_a_plain_model(fork_file, keras2):
    path, conv = fork_file
    model = keras2.ssd7()
    report = load_legacy_weights(model, path)
    assert report.missing_in_file == [] and report.unused_in_file == [] and not report.mismatched
    assert set(conv) <= set(report.loaded)
    for name, (kernel, bias, _) in conv.items():
        np.testing.assert_array_equal(np.asarray(model.get_layer(name).kernel), kernel)
        np.testing.assert_array_equal(np.asarray(model.get_layer(name).bias), bias)
    # The masks and thresholds are read and said to be unused (the kernel holds the zeros).
    assert any("prune_low_magnitude_conv1/mask:0" in line for line in report.not_restored)
    assert any("threshold" in line for line in report.not_restored)
    assert report.pruning_restored == []


def test_fork_file_loads_into_a_pruned_model_with_masks_and_step(fork_file, keras2):
    path, conv = fork_file
    plain = keras2.ssd7()
    load_legacy_weights(plain, path)
    pruned = with_fork_schedule(keras2.ssd7())
    report = load_legacy_weights(pruned, path)
    assert not report.missing_in_file and not report.unused_in_file and not report.mismatched
    assert sorted(report.pruning_restored) == sorted(f"prune_low_magnitude_{n}" for n in conv)
    for wrapper in pruning_wrappers(pruned):
        kernel, bias, mask = conv[wrapper.layer.name]
        np.testing.assert_array_equal(np.asarray(wrapper.masks[0]), mask)
        np.testing.assert_array_equal(np.asarray(wrapper.layer.kernel), kernel)
        # The toolkit counts steps run (50); the wrapper holds the last step index (49).
        assert int(np.asarray(wrapper.pruning_step)) == TOOLKIT_STEP - 1
    # Round trip: the pruned model predicts what the same weights loaded plainly predict.
    x, _ = training_batch(pruned)
    np.testing.assert_allclose(
        np.asarray(pruned.predict(x, verbose=0)),
        np.asarray(plain.predict(x, verbose=0)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_quantisation_aware_file_loads_into_a_plain_model(tmp_path, keras2):
    layers, conv = fork_layers(keras2, keras2.ssd7(1), np.random.default_rng(1), wrapper="quant")
    path = tmp_path / "ssd7_qat_fork.h5"
    keras2.write_full_model(path, layers)
    model = keras2.ssd7()
    report = load_legacy_weights(model, path)
    assert report.missing_in_file == [] and not report.mismatched
    assert report.unused_in_file == ["quantize_layer"]
    for name, (kernel, bias, _) in conv.items():
        np.testing.assert_array_equal(np.asarray(model.get_layer(name).kernel), kernel)
        np.testing.assert_array_equal(np.asarray(model.get_layer(name).bias), bias)
    assert any("quant_conv1/kernel_min:0" in line for line in report.not_restored)


def test_resume_fork_checkpoint_with_optimizer_state(tmp_path, keras2):
    rng = np.random.default_rng(2)
    layers, conv = fork_layers(keras2, keras2.ssd7(1), rng)
    pruned = with_fork_schedule(keras2.ssd7())
    state, ms, vs = keras2_adam_state(keras2, pruned, rng, "tf_keras")
    path = tmp_path / "fork_checkpoint.h5"
    keras2.write_full_model(path, layers, TF_KERAS_TRAINING_CONFIG, state)

    # load_legacy_weights alone says that it leaves the optimizer state.
    assert any(
        line.startswith("optimizer_weights: ")
        for line in load_legacy_weights(with_fork_schedule(keras2.ssd7()), path).not_restored
    )
    report = resume_from_h5(pruned, path)
    assert "Adam state restored" in report.optimizer
    assert len(report.pruning_restored) == len(conv) == 15
    optimizer = pruned.optimizer
    assert int(np.asarray(optimizer.iterations)) == TOOLKIT_STEP
    assert float(np.asarray(optimizer.learning_rate)) == pytest.approx(0.001)
    # Moments by position, checked against the names the file gives them.
    index = {v.path: i for i, v in enumerate(pruned.trainable_variables)}
    i = index["prune_low_magnitude_conv1/conv1/kernel"]
    np.testing.assert_array_equal(np.asarray(optimizer._momentums[i]), ms[("conv1", "kernel")])
    np.testing.assert_array_equal(np.asarray(optimizer._velocities[i]), vs[("conv1", "kernel")])
    j = index["bn3/gamma"]
    np.testing.assert_array_equal(np.asarray(optimizer._momentums[j]), ms[("bn3", "gamma")])

    # Pruning and fine-tuning continue where the fork stopped. The next step is 50, a mask update
    # of the schedule: sparsity 0.8 - 0.3 * 0.5**3 = 0.7625. Restarted at step 0 it would stay
    # 0.5 (and a model without the file's masks would start from 0).
    x, y = training_batch(pruned)
    pruned.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[UpdatePruningStep()])
    assert int(np.asarray(optimizer.iterations)) == TOOLKIT_STEP + 1
    assert {int(np.asarray(w.pruning_step)) for w in pruning_wrappers(pruned)} == {TOOLKIT_STEP}
    for name, sparsity in kernel_sparsity(pruned).items():
        assert sparsity == pytest.approx(0.7625, abs=0.02), name
        kernel = np.asarray(pruned.get_layer(f"prune_low_magnitude_{name}").layer.kernel)
        assert np.all(kernel[conv[name][2] == 0] == 0)  # the fork's pruned weights stay pruned


def test_resume_an_original_notebook_checkpoint(tmp_path, keras2):
    # ssd7_training.ipynb: model.compile(optimizer=adam, loss=ssd_loss.compute_loss) and
    # ModelCheckpoint(save_weights_only=False): a Keras 2.1 full model with Adam's state.
    rng = np.random.default_rng(3)
    source = keras2.ssd7(1)
    layers = keras2.random_layers(source, rng)
    model = keras2.ssd7()
    state, ms, vs = keras2_adam_state(keras2, model, rng, "keras21")
    path = tmp_path / "ssd7_epoch-08_loss-2.1234_val_loss-2.2345.h5"
    keras2.write_full_model(path, layers, KERAS21_TRAINING_CONFIG, state)

    report = resume_from_h5(model, path)
    assert report.missing_in_file == [] and "Adam state restored" in report.optimizer
    optimizer = model.optimizer
    assert type(model.loss).__name__ == "SSDComputeLoss"
    assert float(np.asarray(optimizer.learning_rate)) == pytest.approx(0.0005)
    assert optimizer.epsilon == pytest.approx(1e-8)
    assert int(np.asarray(optimizer.iterations)) == TOOLKIT_STEP
    last = len(model.trainable_variables) - 1  # boxes7's bias, the last trainable weight
    np.testing.assert_array_equal(np.asarray(optimizer._momentums[last]), ms[("boxes7", "bias")])
    np.testing.assert_array_equal(np.asarray(optimizer._velocities[last]), vs[("boxes7", "bias")])
    np.testing.assert_array_equal(
        np.asarray(model.get_layer("conv1").kernel), dict(dict(layers)["conv1"])["conv1/kernel:0"]
    )
    x, y = training_batch(model)
    history = model.fit(x, y, batch_size=2, epochs=9, initial_epoch=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert int(np.asarray(optimizer.iterations)) == TOOLKIT_STEP + 1


def test_resume_says_when_the_optimizer_state_is_missing_and_refuses_weights_only(tmp_path, keras2):
    layers, _ = fork_layers(keras2, keras2.ssd7(1), np.random.default_rng(4))
    path = tmp_path / "no_optimizer.h5"
    keras2.write_full_model(path, layers, TF_KERAS_TRAINING_CONFIG)
    report = resume_from_h5(keras2.ssd7(), path)
    assert "not restored" in report.optimizer and "no optimizer_weights" in report.optimizer
    assert "optimizer: Adam state not restored" in str(report)

    weights_only = tmp_path / "weights_only.h5"
    keras2.write_full_model(weights_only, layers)
    with pytest.raises(ValueError, match="weights_only.h5: no training_config"):
        resume_from_h5(keras2.ssd7(), weights_only)


def test_resume_refuses_optimizer_state_of_another_model(tmp_path, keras2):
    rng = np.random.default_rng(5)
    layers, _ = fork_layers(keras2, keras2.ssd7(1), rng)
    state, _, _ = keras2_adam_state(keras2, keras2.ssd7(), rng, "tf_keras")
    state[1] = (state[1][0], np.zeros((1, 1, 1, 1), "float32"))  # conv1's m of a wrong shape
    path = tmp_path / "other_model_state.h5"
    keras2.write_full_model(path, layers, TF_KERAS_TRAINING_CONFIG, state)
    model = keras2.ssd7()
    report = resume_from_h5(model, path)
    assert "not restored" in report.optimizer and "Adam/conv1/kernel/m:0" in report.optimizer
    assert int(np.asarray(model.optimizer.iterations)) == 0


def test_keras2_decay_becomes_the_same_inverse_time_decay():
    config = {
        "optimizer_config": {
            "class_name": "SGD",
            "config": {"lr": 0.01, "momentum": 0.9, "decay": 1e-4, "nesterov": False},
        }
    }
    optimizer = optimizer_from_training_config(config)
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.momentum == 0.9
    # Keras 2: lr / (1 + decay * iterations).
    schedule = optimizer._learning_rate
    assert float(np.asarray(schedule(100))) == pytest.approx(0.01 / (1 + 1e-4 * 100))
    with pytest.raises(ValueError, match="class_name='Ftrl'"):
        optimizer_from_training_config({"optimizer_config": {"class_name": "Ftrl", "config": {}}})


def test_wrapper_group_without_pruning_step_restores_the_mask_only(tmp_path, keras2):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="conv")(inputs))
    pruned = prune_low_magnitude(model, PolynomialDecay(0.5, 0.8, begin_step=0, end_step=10))
    rng = np.random.default_rng(6)
    mask = magnitude_mask(rng.normal(size=(3, 3, 3, 4)), 0.5).astype("float32")
    kernel = rng.normal(size=(3, 3, 3, 4)).astype("float32") * mask
    group = "prune_low_magnitude_conv"
    weights = [
        ("conv/kernel:0", kernel),
        ("conv/bias:0", np.ones(4, "float32")),
        (f"{group}/mask:0", mask),
    ]
    path = tmp_path / "no_step.h5"
    keras2.write_full_model(path, [("input_1", []), (group, weights)])
    report = load_legacy_weights(pruned, path)
    assert report.pruning_restored == [group]
    wrapper = pruning_wrappers(pruned)[0]
    np.testing.assert_array_equal(np.asarray(wrapper.masks[0]), mask)
    assert int(np.asarray(wrapper.pruning_step)) == -1  # as initialised: not trained yet


def fork_model_config(conv_names, schedule):
    """The part of the fork's ``model_config`` that matters here: one ``PruneLowMagnitude`` layer
    per conv, holding the inner layer's config and the toolkit schedule's ``get_config()``."""
    layers = [
        {
            "class_name": "PruneLowMagnitude",
            "name": f"prune_low_magnitude_{name}",
            "config": {
                "name": f"prune_low_magnitude_{name}",
                "trainable": True,
                "dtype": "float32",
                "layer": {"class_name": "Conv2D", "config": {"name": name, "filters": 4}},
                "pruning_schedule": schedule,
                "block_size": [1, 1],
                "block_pooling_type": "AVG",
            },
            "inbound_nodes": [],
        }
        for name in conv_names
    ]
    return {"class_name": "Functional", "config": {"name": "model", "layers": layers}}


def test_fork_schedules_are_read_from_the_model_config(tmp_path, fork_file, keras2):
    path, conv = fork_file
    polynomial = {
        "class_name": "PolynomialDecay",
        "config": {
            "initial_sparsity": 0.5,
            "final_sparsity": 0.8,
            "power": 3,
            "begin_step": 0,
            "end_step": 100,
            "frequency": 10,
        },
    }
    with_config = tmp_path / "fork_with_config.h5"
    with h5py.File(path, "r") as source, h5py.File(with_config, "w") as target:
        source.copy("model_weights", target)
    with h5py.File(with_config, "a") as f:
        f.attrs["model_config"] = json.dumps(fork_model_config(sorted(conv), polynomial))
    schedules = pruning_schedules_from_h5(with_config)
    assert sorted(schedules) == sorted(conv)
    assert schedules["conv1"].get_config() == {**polynomial["config"], "power": 3.0}

    pruned = prune_low_magnitude(keras2.ssd7(), schedules)
    assert load_legacy_weights(pruned, with_config).pruning_restored
    assert {type(w.pruning_schedule).__name__ for w in pruning_wrappers(pruned)} == {
        "PolynomialDecay"
    }

    constant = {
        "class_name": "ConstantSparsity",
        "config": {"target_sparsity": 0.6, "begin_step": 0, "end_step": -1, "frequency": 100},
    }
    with h5py.File(with_config, "a") as f:
        f.attrs["model_config"] = json.dumps(fork_model_config(["conv1"], constant))
    assert pruning_schedules_from_h5(with_config)["conv1"].target_sparsity == 0.6
    with h5py.File(with_config, "a") as f:
        f.attrs["model_config"] = json.dumps(fork_model_config(["conv1"], {"class_name": "X"}))
    with pytest.raises(ValueError, match="prune_low_magnitude_conv1.*class_name='X'"):
        pruning_schedules_from_h5(with_config)
