"""`SSDLoss(...).compute_loss`, the way the original compiles, saved and reloaded as `.keras`."""

from __future__ import annotations

import keras
import numpy as np

from keras_loss_function.keras_ssd_loss import SSDComputeLoss, SSDLoss

N_ANCHORS, N_CLASSES = 6, 2
WIDTH = N_CLASSES + 1 + 12


def tiny_ssd_like_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((N_ANCHORS, 4))
    classes = keras.layers.Dense(N_CLASSES + 1, activation="softmax", name="classes")(inputs)
    boxes = keras.layers.Dense(12, name="boxes")(inputs)
    return keras.Model(inputs, keras.layers.Concatenate()([classes, boxes]))


def batch(seed: int, size: int = 4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(size, N_ANCHORS, 4)).astype("float32")
    y = np.zeros((size, N_ANCHORS, WIDTH), "float32")
    y[np.arange(size)[:, None], np.arange(N_ANCHORS), rng.integers(0, N_CLASSES + 1, (size, 6))] = 1
    y[..., N_CLASSES + 1 : N_CLASSES + 5] = rng.normal(size=(size, N_ANCHORS, 4))
    return x, y


def test_compute_loss_is_the_per_item_loss():
    x, y = batch(0)
    y_pred = tiny_ssd_like_model(0)(x)
    loss = SSDLoss(neg_pos_ratio=2, alpha=0.5)
    per_item = keras.ops.convert_to_numpy(loss.compute_loss(y, y_pred))
    assert per_item.shape == (4,)
    np.testing.assert_allclose(per_item.mean(), keras.ops.convert_to_numpy(loss(y, y_pred)))
    assert isinstance(loss.compute_loss, SSDComputeLoss)
    assert loss.compute_loss.loss is loss


def test_model_compiled_with_compute_loss_reloads_and_continues_training(
    tmp_path, keras_reload, fresh_python
):
    # The original notebooks: model.compile(optimizer=adam, loss=ssd_loss.compute_loss). Keras
    # stored the bound method as a bare name and load_model raised
    # "TypeError: Expected 'config' to be a dict".
    x, y = batch(1)
    model = tiny_ssd_like_model(1)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=SSDLoss(neg_pos_ratio=2, n_neg_min=1, alpha=0.5).compute_loss,
    )
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)

    reloaded = keras_reload(model, x, "model")
    assert isinstance(reloaded.loss, SSDComputeLoss)
    config = reloaded.loss.get_config()
    assert (config["neg_pos_ratio"], config["n_neg_min"], config["alpha"]) == (2, 1, 0.5)
    assert int(reloaded.optimizer.iterations) == 2
    np.testing.assert_allclose(
        reloaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6
    )
    # Training continues from the same optimizer state: one more epoch gives the same weights.
    for m in (model, reloaded):
        m.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), reloaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(reloaded.optimizer.iterations) == 4

    # A new process needs only `import models` (which registers the ssd_keras objects).
    code = (
        "import keras, models, sys; "
        f"m = keras.models.load_model({str(tmp_path / 'model.keras')!r}); "
        "sys.exit(type(m.loss).__name__ != 'SSDComputeLoss' or m.loss.loss.alpha != 0.5)"
    )
    fresh_python("-c", code)
