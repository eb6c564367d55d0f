"""Resume: an interrupted run continued from its backup ends where an uninterrupted one does."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from ssd_keras.callbacks import TrainingBackup
from ssd_keras.config import RunConfig
from ssd_keras.data import load_voc
from ssd_keras.train import FixedStepsDataset, RunExistsError, train

from .conftest import TINY_IMAGE_SIZE


class HalveLearningRate(keras.callbacks.Callback):
    """Changes the learning rate in place at every epoch end, as ReduceLROnPlateau does: a resume
    that lost the optimizer's learning-rate variable would train epoch 2 at the wrong rate."""

    def on_epoch_end(self, epoch, logs=None):
        lr = self.model.optimizer.learning_rate
        lr.assign(lr * 0.5)


class Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt(f"simulated interruption before epoch {epoch}")


def _run(config, dataset, out_dir, epochs, callbacks, resume=False):
    return train(
        config,
        dataset,
        out_dir,
        epochs=epochs,
        batch_size=4,
        steps_per_epoch=3,  # 16 images / 4 = 4 batches: epochs straddle the data's passes
        optimizer="adam",
        lr_schedule="constant",
        augmentation="constant",
        resume=resume,
        seed=11,
        extra_callbacks=callbacks,
        verbose=0,
    )


def test_resume_matches_uninterrupted_run(tiny_shapes, tmp_path):
    config = RunConfig.create("ssd7", tiny_shapes["classes"], image_size=TINY_IMAGE_SIZE)
    dataset = load_voc(tiny_shapes["root"], "train", config.classes)

    full = _run(config, dataset, tmp_path / "full", 2, [HalveLearningRate()])

    with pytest.raises(KeyboardInterrupt):
        _run(config, dataset, tmp_path / "cut", 2, [HalveLearningRate(), Interrupt(1)])
    with pytest.raises(RunExistsError):
        _run(config, dataset, tmp_path / "cut", 2, [HalveLearningRate()])
    resumed = _run(config, dataset, tmp_path / "cut", 2, [HalveLearningRate()], resume=True)

    assert resumed.initial_epoch == 1
    assert len(resumed.history["loss"]) == 1
    # Same epoch count, optimizer steps, learning rate (1e-3 halved twice), moments and
    # weights as the uninterrupted run.
    assert int(resumed.model.optimizer.iterations) == int(full.model.optimizer.iterations) == 6
    lr_full = float(full.model.optimizer.learning_rate)
    assert float(resumed.model.optimizer.learning_rate) == pytest.approx(lr_full)
    assert lr_full == pytest.approx(1e-3 / 4)
    for a, b in zip(full.model.optimizer.variables, resumed.model.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    for a, b in zip(full.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert resumed.history["loss"][-1] == pytest.approx(full.history["loss"][-1], rel=1e-4)
    # The CSV log continues: one row per epoch over both sessions.
    rows = (tmp_path / "cut" / "training_log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]


def test_fixed_steps_dataset_walks_the_epochs_in_order(tiny_shapes):
    config = RunConfig.create("ssd7", tiny_shapes["classes"], image_size=TINY_IMAGE_SIZE)
    dataset = load_voc(tiny_shapes["root"], "train", config.classes)
    base = dataset.to_py_dataset(batch_size=4, seed=5, returns=("image_ids",))
    view = FixedStepsDataset(base, steps=3)
    # 4 batches per pass: view epoch 1 = stream batches 3, 4, 5 = pass 0 batch 3, pass 1 batches
    # 0 and 1.
    view.set_epoch(1)
    got = [view[i][0] for i in range(3)]
    expected = []
    for epoch, index in ((0, 3), (1, 0), (1, 1)):
        base.set_epoch(epoch)
        expected.append(base[index][0])
    assert got == expected
    assert len(view) == 3


def test_backup_restores_callback_counters(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    plateau = keras.callbacks.ReduceLROnPlateau(patience=5)
    stopping = keras.callbacks.EarlyStopping(patience=7)
    backup = TrainingBackup(tmp_path / "backup", callbacks=[plateau, stopping])
    backup.set_model(model)
    plateau.wait, plateau.best, plateau.cooldown_counter = 3, 0.25, 1
    stopping.wait, stopping.best, stopping.best_epoch = 4, 0.5, 2
    backup.on_epoch_end(5)
    saved = json.loads((tmp_path / "backup" / "callback_state.json").read_text())
    assert saved["0:ReduceLROnPlateau"] == {"wait": 3, "best": 0.25, "cooldown_counter": 1}

    fresh_plateau = keras.callbacks.ReduceLROnPlateau(patience=5)
    fresh_stopping = keras.callbacks.EarlyStopping(patience=7)
    restore = TrainingBackup(tmp_path / "backup", callbacks=[fresh_plateau, fresh_stopping])
    restore.set_model(model)
    restore.on_train_begin()
    assert (fresh_plateau.wait, fresh_plateau.best, fresh_plateau.cooldown_counter) == (3, 0.25, 1)
    assert (fresh_stopping.wait, fresh_stopping.best, fresh_stopping.best_epoch) == (4, 0.5, 2)
    assert model._initial_epoch == 6  # BackupAndRestore's own epoch bookkeeping
