"""Magnitude pruning: schedules, wrapper, callback, strip, report, save/load and resume."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_optimization.pruning import (
    ConstantSparsity,
    PolynomialDecay,
    PruneLowMagnitude,
    UpdatePruningStep,
    format_sparsity_report,
    magnitude_mask,
    prune_low_magnitude,
    pruning_wrappers,
    sparsity_report,
    strip_pruning,
)

_np = keras.ops.convert_to_numpy

# --------------------------------------------------------------------------------------------
# Schedules (hand-checkable numbers)
# --------------------------------------------------------------------------------------------


def test_polynomial_decay_values_and_update_steps():
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100, frequency=10)
    # p = 0.5 -> 0.8 + (0 - 0.8) * 0.5**3 = 0.8 - 0.1 = 0.7
    assert schedule(50) == (True, pytest.approx(0.7))
    # p = 0.25 -> 0.8 - 0.8 * 0.75**3 = 0.8 - 0.3375 = 0.4625; step 25 is not on the grid
    assert schedule(25) == (False, pytest.approx(0.4625))
    assert schedule(0) == (True, pytest.approx(0.0))
    assert schedule(100) == (True, pytest.approx(0.8))
    # after end_step: the sparsity stays final and the masks are no longer updated
    assert schedule(110) == (False, pytest.approx(0.8))
    linear = PolynomialDecay(0.2, 0.6, begin_step=10, end_step=30, power=1, frequency=5)
    assert linear(20) == (True, pytest.approx(0.4))
    assert linear(5) == (False, pytest.approx(0.2))


def test_constant_sparsity_open_end_and_begin_step():
    schedule = ConstantSparsity(0.5, begin_step=3, frequency=4)
    assert [schedule(s)[0] for s in range(12)] == [
        False, False, False, True, False, False, False, True, False, False, False, True
    ]  # fmt: skip
    assert schedule(10**6 + 3) == (True, 0.5)  # end_step=-1: forever
    bounded = ConstantSparsity(0.5, begin_step=0, end_step=8, frequency=4)
    assert [bounded(s)[0] for s in (0, 4, 8, 12)] == [True, True, True, False]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ConstantSparsity(1.0), "target_sparsity"),
        (lambda: ConstantSparsity(-0.1), "target_sparsity"),
        (lambda: ConstantSparsity(0.5, begin_step=-1), "begin_step"),
        (lambda: ConstantSparsity(0.5, begin_step=5, end_step=2), "end_step"),
        (lambda: ConstantSparsity(0.5, frequency=0), "frequency"),
        (lambda: PolynomialDecay(0.0, 0.5, begin_step=10, end_step=10), "end_step"),
        (lambda: PolynomialDecay(0.0, 0.5, begin_step=0, end_step=-1), "end_step"),
        (lambda: PolynomialDecay(0.0, 1.5, begin_step=0, end_step=10), "final_sparsity"),
    ],
)
def test_schedule_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_schedule_serialization_round_trip():
    for schedule in (ConstantSparsity(0.3, 2, 50, 7), PolynomialDecay(0.1, 0.9, 5, 105, 2, 20)):
        config = keras.saving.serialize_keras_object(schedule)
        again = keras.saving.deserialize_keras_object(config)
        assert type(again) is type(schedule)
        assert again.get_config() == schedule.get_config()


# --------------------------------------------------------------------------------------------
# The mask
# --------------------------------------------------------------------------------------------


def test_magnitude_mask_hand_example():
    w = np.array([[0.1, -3.0], [2.0, -0.5]], dtype="float32")
    # sparsity 0.5 of 4 weights -> keep the 2 largest |w|: -3.0 and 2.0
    np.testing.assert_array_equal(magnitude_mask(w, 0.5), [[0, 1], [1, 0]])
    # sparsity 0.99 still keeps one weight (as the TF toolkit does)
    np.testing.assert_array_equal(magnitude_mask(w, 0.99), [[0, 1], [0, 0]])
    np.testing.assert_array_equal(magnitude_mask(w, 0.0), np.ones((2, 2)))


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 200),
    sparsity=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**31 - 1),
)
def test_magnitude_mask_keeps_exactly_the_largest(n, sparsity, seed):
    w = np.random.default_rng(seed).normal(size=n).astype("float32")
    mask = magnitude_mask(w, sparsity)
    n_keep = max(1, round(n * (1 - sparsity)))
    assert mask.sum() == n_keep
    if n_keep < n:  # every kept |w| >= every pruned |w|
        assert np.abs(w[mask == 1]).min() >= np.abs(w[mask == 0]).max()


# --------------------------------------------------------------------------------------------
# Wrapping, training, stripping
# --------------------------------------------------------------------------------------------


def _kernel_sparsities(model):
    return {r["layer"]: r["sparsity"] for r in sparsity_report(model) if r["wrapped"]}


def test_prune_low_magnitude_wraps_conv2d_only_and_starts_identical(helpers, conv_data):
    model = helpers.small_conv_model()
    pruned = prune_low_magnitude(model, ConstantSparsity(0.5, 0, frequency=1))
    wrapped = {w.layer.name for w in pruning_wrappers(pruned)}
    assert wrapped == {"c1", "c2"}  # Dense is not a Conv2D
    assert "prune_low_magnitude_c1" in [layer.name for layer in pruned.layers]
    x, _ = conv_data
    # all masks start at one: the wrapped model computes what the original computes
    np.testing.assert_allclose(pruned.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    # the weights are copies, not shared
    assert (
        pruned.get_layer("prune_low_magnitude_c1").layer.kernel is not model.get_layer("c1").kernel
    )


def test_layer_choice_by_name_predicate_and_dict(helpers):
    model = helpers.small_conv_model()
    by_name = prune_low_magnitude(model, ConstantSparsity(0.5), layers=["c2", "dense"])
    assert {w.layer.name for w in pruning_wrappers(by_name)} == {"c2", "dense"}
    by_fn = prune_low_magnitude(
        model, ConstantSparsity(0.5), layers=lambda layer: layer.name.startswith("c1")
    )
    assert {w.layer.name for w in pruning_wrappers(by_fn)} == {"c1"}
    by_dict = prune_low_magnitude(
        model, {"c1": ConstantSparsity(0.3), "dense": ConstantSparsity(0.6)}
    )
    schedules = {
        w.layer.name: w.pruning_schedule.target_sparsity for w in pruning_wrappers(by_dict)
    }
    assert schedules == {"c1": 0.3, "dense": 0.6}
    with pytest.raises(ValueError, match="no layer named"):
        prune_low_magnitude(model, ConstantSparsity(0.5), layers=["nope"])
    with pytest.raises(ValueError, match="no kernel"):
        prune_low_magnitude(model, ConstantSparsity(0.5), layers=["bn1"])
    with pytest.raises(ValueError, match="already wrapped"):
        prune_low_magnitude(by_name, ConstantSparsity(0.5))


def test_l2_normalization_is_never_pruned():
    l2norm = pytest.importorskip("keras_layers.keras_layer_L2Normalization")
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = l2norm.L2Normalization(gamma_init=20, name="norm")(x)
    model = keras.Model(inputs, x)
    # default (every Conv2D) skips it ...
    pruned = prune_low_magnitude(model, ConstantSparsity(0.5))
    assert [w.layer.name for w in pruning_wrappers(pruned)] == ["conv"]
    # ... and asking for it explicitly is an error naming the layer
    with pytest.raises(ValueError, match="'norm' \\(L2Normalization\\)"):
        prune_low_magnitude(model, ConstantSparsity(0.5), layers=["norm"])
    assert all(r["layer"] != "norm" for r in sparsity_report(pruned))


def _fit(model, data, epochs, callback=None, batch_size=8):
    x, y = data
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    model.fit(
        x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=False,
        callbacks=[callback or UpdatePruningStep()],
    )  # fmt: skip


def test_reaches_scheduled_sparsity_and_stays_sparse_while_fine_tuning(helpers, conv_data):
    model = helpers.small_conv_model()
    # 64 samples / batch 8 = 8 steps per epoch; masks updated at steps 0, 4, ..., 16
    schedule = PolynomialDecay(0.0, 0.75, begin_step=0, end_step=16, frequency=4)
    pruned = prune_low_magnitude(model, schedule)
    _fit(pruned, conv_data, epochs=3)  # steps 0..23
    sparsities = _kernel_sparsities(pruned)
    assert set(sparsities) == {"c1", "c2"}
    for name, value in sparsities.items():
        assert abs(value - 0.75) <= 0.01, (name, value)
    masks = [_np(m) for w in pruning_wrappers(pruned) for m in w.masks]
    kept_before = _np(pruned.get_layer("prune_low_magnitude_c2").layer.kernel)

    _fit(pruned, conv_data, epochs=2)  # fine-tuning past end_step: masks frozen
    for mask, again in zip(masks, [_np(m) for w in pruning_wrappers(pruned) for m in w.masks]):
        np.testing.assert_array_equal(mask, again)
    wrapper = pruned.get_layer("prune_low_magnitude_c2")
    kernel = _np(wrapper.layer.kernel)
    mask = _np(wrapper.masks[0])
    assert np.all(kernel[mask == 0] == 0)  # pruned weights are exactly zero in the variable
    assert not np.allclose(kernel[mask == 1], kept_before[mask == 1])  # the rest trained
    assert int(_np(wrapper.pruning_step)) == 8 * 5 - 1
    for value in _kernel_sparsities(pruned).values():
        assert abs(value - 0.75) <= 0.01
    # the dense model is untouched
    assert np.count_nonzero(_np(model.get_layer("c2").kernel) == 0) == 0


def test_strip_save_load_keep_sparsity_and_outputs(helpers, conv_data, keras_reload):
    model = helpers.small_conv_model()
    pruned = prune_low_magnitude(model, ConstantSparsity(0.6, begin_step=0, frequency=2))
    _fit(pruned, conv_data, epochs=1)
    x, _ = conv_data
    expected = pruned.predict(x, verbose=0)

    # the pruned model itself saves and reloads with its masks and step (no custom_objects)
    reloaded = keras_reload(pruned, x, "pruned", expected=expected, atol=1e-6)
    for a, b in zip(pruning_wrappers(pruned), pruning_wrappers(reloaded)):
        np.testing.assert_array_equal(_np(a.masks[0]), _np(b.masks[0]))
        assert int(_np(b.pruning_step)) == 7
        assert b.pruning_schedule.get_config() == a.pruning_schedule.get_config()

    stripped = strip_pruning(reloaded)
    assert not pruning_wrappers(stripped)
    assert [layer.name for layer in stripped.layers] == [layer.name for layer in model.layers]
    np.testing.assert_allclose(stripped.predict(x, verbose=0), expected, atol=1e-6)
    final = keras_reload(stripped, x, "stripped")
    report = {r["layer"]: r for r in sparsity_report(final)}
    for name in ("c1", "c2"):
        assert abs(report[name]["sparsity"] - 0.6) <= 0.01
    assert report["dense"]["sparsity"] == 0.0
    table = format_sparsity_report(sparsity_report(final))
    assert "c2" in table and "total" in table


def test_resume_after_save_load_continues_the_schedule(helpers, conv_data, keras_reload):
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=16, frequency=8)
    pruned = prune_low_magnitude(helpers.small_conv_model(), schedule)
    _fit(pruned, conv_data, epochs=1)  # steps 0..7: only the step-0 update (sparsity 0)
    assert all(v == 0.0 for v in _kernel_sparsities(pruned).values())

    resumed = keras_reload(pruned, conv_data[0], "mid")
    _fit(resumed, conv_data, epochs=2)  # steps 8..23: updates at 8 (0.7) and 16 (0.8)
    wrapper = pruning_wrappers(resumed)[0]
    assert int(_np(wrapper.pruning_step)) == 23
    for value in _kernel_sparsities(resumed).values():
        assert abs(value - 0.8) <= 0.01


def test_resume_with_backup_and_restore_listed_after_the_callback(helpers, conv_data, tmp_path):
    """BackupAndRestore restores the wrappers (and their step) in its own on_train_begin. Listed
    after UpdatePruningStep, that runs second; the callback used to read the step first, so the
    resumed run restarted the schedule at step 0 and its step-0 update re-opened the masks."""
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=16, frequency=8)
    x, y = conv_data
    backup = str(tmp_path / "backup")

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt  # an interrupted run: the backup holds epochs 0-1

    def run(model, epochs, extra=()):
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        callbacks = [UpdatePruningStep(), keras.callbacks.BackupAndRestore(backup), *extra]
        model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks)

    keras.utils.set_random_seed(0)
    first = prune_low_magnitude(helpers.small_conv_model(), schedule)
    with pytest.raises(KeyboardInterrupt):
        run(first, epochs=3, extra=[StopAfterFirstEpoch()])  # steps 0..15: updates at 0 and 8
    assert all(abs(v - 0.7) <= 0.01 for v in _kernel_sparsities(first).values())

    keras.utils.set_random_seed(0)
    resumed = prune_low_magnitude(helpers.small_conv_model(), schedule)
    run(resumed, epochs=3)  # restored at epoch 2: steps 16..23, the update at 16 (0.8)
    assert int(_np(pruning_wrappers(resumed)[0].pruning_step)) == 23
    for value in _kernel_sparsities(resumed).values():
        assert abs(value - 0.8) <= 0.01


def test_callback_refuses_a_model_without_wrappers(helpers, conv_data):
    with pytest.raises(ValueError, match="no PruneLowMagnitude"):
        _fit(helpers.small_conv_model(), conv_data, epochs=1)


def test_wrapper_config_round_trip():
    layer = keras.layers.Conv2D(4, 3, name="conv")
    wrapper = PruneLowMagnitude(layer, PolynomialDecay(0.0, 0.5, 0, 10, frequency=2))
    again = PruneLowMagnitude.from_config(wrapper.get_config())
    assert again.name == "prune_low_magnitude_conv"
    assert again.layer.get_config() == layer.get_config()
    assert again.pruning_schedule.get_config() == wrapper.pruning_schedule.get_config()
    with pytest.raises(ValueError, match="PruningSchedule"):
        PruneLowMagnitude(layer, 0.5)


# --------------------------------------------------------------------------------------------
# SSD7
# --------------------------------------------------------------------------------------------


def test_ssd7_magnitude_pruning_with_ssd_loss(helpers, keras_reload):
    from keras_loss_function.keras_ssd_loss import SSDLoss

    model, predictor_sizes = helpers.ssd7_small()
    images, y_true = helpers.ssd7_targets(predictor_sizes, n_images=8)
    pruned = prune_low_magnitude(model, ConstantSparsity(0.5, begin_step=0, frequency=1000))
    names = {w.layer.name for w in pruning_wrappers(pruned)}
    expected = {f"conv{i}" for i in range(1, 8)}
    expected |= {f"{head}{i}" for head in ("classes", "boxes") for i in range(4, 8)}
    assert names == expected
    pruned.compile(optimizer=keras.optimizers.Adam(1e-3), loss=SSDLoss().compute_loss)
    history = pruned.fit(
        images, y_true, batch_size=4, epochs=2, verbose=0, callbacks=[UpdatePruningStep()]
    )
    assert np.all(np.isfinite(history.history["loss"]))
    for name, value in _kernel_sparsities(pruned).items():
        assert abs(value - 0.5) <= 0.01, (name, value)
    stripped = strip_pruning(pruned)
    np.testing.assert_allclose(
        stripped.predict(images[:2], verbose=0), pruned.predict(images[:2], verbose=0), atol=1e-5
    )
    reloaded = keras_reload(stripped, images[:2], "ssd7")
    rows = [r for r in sparsity_report(reloaded) if r["layer"] in expected]
    assert len(rows) == 15 and all(abs(r["sparsity"] - 0.5) <= 0.01 for r in rows)


_JAX_SCRIPT = """
import json
import keras
import numpy as np
from model_optimization.pruning import (
    PolynomialDecay, UpdatePruningStep, prune_low_magnitude, pruning_wrappers, sparsity_report)

keras.utils.set_random_seed(0)
inputs = keras.Input((8, 8, 3))
x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
x = keras.layers.BatchNormalization(name="bn1")(x)
x = keras.layers.GlobalAveragePooling2D()(x)
model = keras.Model(inputs, keras.layers.Dense(2, name="d")(x))
rng = np.random.default_rng(0)
x, y = rng.normal(size=(32, 8, 8, 3)).astype("float32"), rng.normal(size=(32, 2)).astype("float32")
pruned = prune_low_magnitude(model, PolynomialDecay(0.0, 0.75, 0, 8, frequency=4))
pruned.compile(optimizer="adam", loss="mse")
pruned.fit(x, y, batch_size=8, epochs=3, callbacks=[UpdatePruningStep()], verbose=0)
w = pruning_wrappers(pruned)[0]
kernel, mask = (keras.ops.convert_to_numpy(v) for v in (w.layer.kernel, w.masks[0]))
print(json.dumps({
    "backend": keras.backend.backend(),
    "sparsity": [r["sparsity"] for r in sparsity_report(pruned) if r["wrapped"]],
    "masked_nonzero": int(np.count_nonzero(kernel[mask == 0])),
    "step": int(keras.ops.convert_to_numpy(w.pruning_step)),
}))
"""


def test_magnitude_pruning_on_the_jax_backend(fresh_python):
    """The wrapper is pure keras.ops; the callback syncs JAX's trainer state before editing."""
    import json

    pytest.importorskip("jax")
    done = fresh_python("-c", _JAX_SCRIPT, env={"KERAS_BACKEND": "jax"}, timeout=300)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    # 4 steps per epoch x 3 epochs: updates at 0, 4, 8 -> final 0.75 of 216 weights (162 zeros)
    assert result["sparsity"] == [0.75]
    assert result["masked_nonzero"] == 0  # re-zeroed at the end of each epoch
    assert result["step"] == 11
