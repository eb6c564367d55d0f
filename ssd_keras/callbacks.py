"""Callbacks of the training app: resumable backups, dataset epochs, mAP during training."""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np

# Attributes that make up the state of the stock callbacks that decide something across epochs.
_CALLBACK_STATE = {
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch", "stopped_epoch"),
    keras.callbacks.ModelCheckpoint: ("best",),
}
CALLBACK_STATE_FILE = "callback_state.json"


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if hasattr(value, "numpy"):
        return np.asarray(value).item()
    return value


class TrainingBackup(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that also saves the state of the other callbacks.

    ``BackupAndRestore`` writes, at every epoch end, the model weights together with the
    optimizer's variables (iteration count, moments, and the learning rate, which is a variable
    that `ReduceLROnPlateau` changes in place) and the epoch number; at the start of the next
    ``fit`` it restores them and training continues at that epoch. What it leaves out is the
    counters of `ReduceLROnPlateau`, `EarlyStopping` and the best value of `ModelCheckpoint`
    (``save_best_only``): without them a resumed run would reduce the learning rate or stop
    at other epochs than an uninterrupted one. This subclass writes those into
    ``callback_state.json`` next to the weights and puts them back.

    Place it last in the callback list, so that it saves after the other callbacks have updated
    their state for the epoch.

    Args:
        backup_dir: the folder of the backup (used by nothing else).
        callbacks: the callbacks whose state to keep (others in the list are ignored).
        delete_checkpoint: delete the backup when ``fit`` completes (default False, so a
            finished run can be extended with more epochs).
    """

    def __init__(self, backup_dir, callbacks=(), delete_checkpoint: bool = False):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=delete_checkpoint)
        self.tracked = [c for c in callbacks if self._attributes(c)]
        self._state_path = Path(backup_dir) / CALLBACK_STATE_FILE

    @staticmethod
    def _attributes(callback) -> tuple:
        for kind, names in _CALLBACK_STATE.items():
            if isinstance(callback, kind):
                return names
        return ()

    def _key(self, index: int, callback) -> str:
        return f"{index}:{type(callback).__name__}"

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if not self._state_path.is_file():
            return
        saved = json.loads(self._state_path.read_text())
        for index, callback in enumerate(self.tracked):
            state = saved.get(self._key(index, callback))
            if state is None:
                continue
            for name, value in state.items():
                setattr(callback, name, value)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        state = {
            self._key(index, callback): {
                name: _plain(getattr(callback, name))
                for name in self._attributes(callback)
                if hasattr(callback, name)
            }
            for index, callback in enumerate(self.tracked)
        }
        self._state_path.write_text(json.dumps(state))


class DatasetEpoch(keras.callbacks.Callback):
    """Tells a `DataGeneratorPyDataset` which epoch starts, so its order and augmentation follow
    the epoch number, also after a resume (the dataset itself counts from 0)."""

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.set_epoch(epoch)


class MeanAveragePrecision(keras.callbacks.Callback):
    """Evaluates the VOC mAP on a dataset every ``every`` epochs and adds it to the logs.

    Adds ``val_mAP`` (11-point) and ``val_mAP_all`` (all-point) to the epoch logs (so that
    `CSVLogger`, placed after this callback, records them) and keeps ``self.records``: one dict
    per evaluation with the epoch, both mAPs and the training wall-clock minutes so far
    (evaluation time excluded).

    Args:
        config: the `RunConfig`.
        dataset: a `DataGenerator` with labels.
        every: evaluate every this many epochs (and always after the last one).
        batch_size: prediction batch size.
    """

    def __init__(self, config, dataset, every: int = 1, batch_size: int = 8):
        super().__init__()
        self.config = config
        self.dataset = dataset
        self.every = max(1, int(every))
        self.batch_size = batch_size
        self.records: list[dict] = []
        self._train_seconds = 0.0
        self.eval_seconds = 0.0
        self._epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self._epoch_start is not None:
            self._train_seconds += time.perf_counter() - self._epoch_start
        self._last_epoch = epoch + 1
        last = self.params.get("epochs") == epoch + 1
        if (epoch + 1) % self.every and not last:
            return
        self._evaluate(epoch + 1, logs)

    def on_train_end(self, logs=None):
        # Training stopped early (time budget, EarlyStopping): evaluate the final weights too.
        last = getattr(self, "_last_epoch", None)
        if last is not None and (not self.records or self.records[-1]["epoch"] != last):
            self._evaluate(last, None)

    def _evaluate(self, epoch: int, logs) -> None:
        from ssd_keras.evaluate import evaluate

        start = time.perf_counter()
        result = evaluate(self.model, self.config, self.dataset, self.batch_size, verbose=False)
        self.eval_seconds += time.perf_counter() - start
        record = {
            "epoch": epoch,
            "train_minutes": round(self._train_seconds / 60, 3),
            "mAP_11point": result["mAP_11point"],
            "mAP_all_point": result["mAP_all_point"],
        }
        if logs is not None:
            logs["val_mAP"] = record["mAP_11point"]
            logs["val_mAP_all"] = record["mAP_all_point"]
        self.records.append(record)
        print(
            f"\nepoch {epoch}: mAP {record['mAP_11point']:.4f} (11-point), "
            f"{record['mAP_all_point']:.4f} (all-point) after {record['train_minutes']:.2f} "
            "min of training",
            flush=True,
        )


class StopAfterMinutes(keras.callbacks.Callback):
    """Stops training once ``minutes`` of wall clock have passed.

    Args:
        minutes: the budget.
        exclude: an object with an ``eval_seconds`` attribute (e.g. `MeanAveragePrecision`)
            whose time does not count; place this callback after it.
        per_batch: also check after every batch (the last epoch may then be cut short);
            otherwise training stops at the end of the first epoch past the budget.
    """

    def __init__(self, minutes: float, exclude=None, per_batch: bool = False):
        super().__init__()
        self.seconds = float(minutes) * 60
        self.exclude = exclude
        self.per_batch = per_batch
        self._start = None

    def _check(self):
        spent = time.perf_counter() - self._start
        if self.exclude is not None:
            spent -= self.exclude.eval_seconds
        if spent >= self.seconds:
            self.model.stop_training = True

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.per_batch:
            self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()
