"""Training as in the original notebooks, with resumable runs and optional multi-device training.

Recipes (the defaults per model; every piece can be overridden):

- SSD300 / SSD512 (``ssd300_training.ipynb``): SGD, momentum 0.9, learning rate 1e-3 until
  epoch 80, 1e-4 until epoch 100, then 1e-5 (`ssd300_lr_schedule`); `SSDLoss` with
  ``neg_pos_ratio=3, alpha=1``; `SSDDataAugmentation`; encoder IoU thresholds 0.5 / 0.5.
- SSD7 (``ssd7_training.ipynb``): Adam 1e-3; `DataAugmentationConstantInputSize` after a resize
  to the input size; encoder IoU thresholds 0.5 / 0.3; `EarlyStopping` (patience 10) and
  `ReduceLROnPlateau` (factor 0.2, patience 8, min 1e-5) on the validation loss.
- SSDLite: Adam 1e-3 with the same plateau schedule and early stopping (BatchNorm everywhere
  trains well with Adam from scratch or from ImageNet weights), SSD7's resize +
  `DataAugmentationConstantInputSize` (on BCCD from scratch it reached mAP 0.57 in 24 epochs;
  `SSDDataAugmentation`, whose zoom-out shrinks small objects below the smallest anchors, gave
  0.013 after 21), encoder IoU thresholds 0.5 / 0.5.
- Always: `ModelCheckpoint` (best model), `CSVLogger`, `TerminateOnNaN`; `TensorBoard` on
  request.

A run writes into one folder::

    config.json          the RunConfig (model, classes, anchors, encoder)
    model.keras          the model at the end of training (training mode)
    model_best.keras     the best model by the monitored loss
    training_log.csv     one row per epoch (loss, val_loss, learning_rate, ...)
    loss.png             the loss curves
    backup/              the last epoch's weights, optimizer state, epoch and callback state
    train_args.json      the command-line arguments (when given), reused by ``--resume``
    initial_model.keras  the given starting model (``model=``, e.g. a pruned one), for resume

Resume: an interrupted run is continued with ``train(..., resume=True)`` (``--resume``): the
model, the optimizer state (moments, iteration count, learning rate), the epoch and the counters
of the LR/early-stopping callbacks come back from ``backup/``, and since the order and
augmentation of each epoch's batches depend only on ``(seed, epoch, batch)``, the resumed run
sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import threading
from pathlib import Path

import keras

from ssd_keras.callbacks import DatasetEpoch, TrainingBackup
from ssd_keras.config import RunConfig, run_has_trained
from ssd_keras.data import training_transformations
from ssd_keras.loss_curve import plot_loss_curve, read_log  # noqa: F401  (public here too)
from ssd_keras.precision import (  # noqa: F401  (public here too)
    dtype_policy,
    float32_model,
    mixed_precision_policy,
)
from ssd_keras.run_folder import TRAIN_ARGS_FILE, finished_epochs

OPTIMIZERS = ("adam", "sgd")
LOSSES = ("softmax", "focal")
LR_SCHEDULES = ("plateau", "ssd300", "constant")
BACKUP_DIR = "backup"
LOG_FILE = "training_log.csv"
# The architecture of a run trained from a given model (e.g. a pruned one); resume loads it.
INITIAL_MODEL = "initial_model.keras"


class RunExistsError(FileExistsError):
    """The output folder already holds a run and neither resume nor overwrite was asked for."""


def ssd300_lr_schedule(epoch: int, lr: float | None = None) -> float:
    """The SSD300 notebook's schedule: 1e-3 until epoch 80, 1e-4 until 100, then 1e-5."""
    if epoch < 80:
        return 0.001
    if epoch < 100:
        return 0.0001
    return 0.00001


def recipe(model: str) -> dict:
    """Default optimizer, learning rate, schedule and augmentation of the original notebooks."""
    if model in ("ssd7", "ssdlite"):
        return {
            "optimizer": "adam",
            "learning_rate": 0.001,
            "lr_schedule": "plateau",
            "augmentation": "constant",
        }
    return {
        "optimizer": "sgd",
        "learning_rate": 0.001,
        "lr_schedule": "ssd300",
        "augmentation": "ssd",
    }


def make_optimizer(name: str, learning_rate: float):
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {name!r}")


@dataclasses.dataclass
class TrainResult:
    """What `train` returns."""

    model: keras.Model
    history: dict
    out_dir: Path
    initial_epoch: int
    paths: dict


def _check_out_dir(out_dir: Path, resume: bool, overwrite: bool, epochs: int) -> None:
    if resume:
        if not (out_dir / BACKUP_DIR / "latest.weights.h5").is_file():
            raise FileNotFoundError(
                f"nothing to resume in {out_dir}: no {BACKUP_DIR}/latest.weights.h5 (a run writes "
                "it at the end of its first epoch)"
            )
        done = finished_epochs(out_dir)
        if done is not None and done >= epochs:
            raise ValueError(
                f"the run in {out_dir} finished at epoch {done}; raise epochs (--epochs) above "
                f"{done} to continue it"
            )
        return
    # A folder whose run never finished an epoch (it stopped on bad data, a bad argument or an
    # interruption) holds only what a run writes at its start: it is started again.
    if (out_dir / "config.json").exists() or (out_dir / BACKUP_DIR).exists():
        if run_has_trained(out_dir) and not overwrite:
            raise RunExistsError(
                f"{out_dir} already holds a training run; continue it with resume (--resume), "
                "start over with overwrite (--overwrite), or choose another output folder"
            )
        for name in (
            BACKUP_DIR,
            LOG_FILE,
            "model.keras",
            "model_best.keras",
            "loss.png",
            INITIAL_MODEL,
            TRAIN_ARGS_FILE,
        ):
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def train(
    config: RunConfig,
    train_data,
    out_dir,
    epochs: int,
    val_data=None,
    batch_size: int = 16,
    steps_per_epoch: int | None = None,
    optimizer: str | None = None,
    learning_rate: float | None = None,
    lr_schedule: str | None = None,
    augmentation: str | None = None,
    early_stopping_patience: int | None = 10,
    resume: bool = False,
    overwrite: bool = False,
    seed: int = 0,
    strategy=None,
    workers: int = 1,
    tensorboard: bool = False,
    extra_callbacks=(),
    verbose="auto",
    model: keras.Model | None = None,
    train_args: dict | None = None,
    backbone_weights=None,
    loss: str = "softmax",
    focal_gamma: float = 2.0,
    focal_alpha: float = 0.25,
    mixed_precision: bool = False,
) -> TrainResult:
    """Trains ``config``'s model on ``train_data`` and writes the run folder ``out_dir``.

    Args:
        config: the `RunConfig` (saved as ``config.json``; on resume the saved one must match).
        train_data: a `DataGenerator` with labels.
        out_dir: the run folder.
        epochs: the total number of epochs (a resumed run continues up to it).
        val_data: a `DataGenerator` for the validation loss, or None (then the training loss
            is monitored).
        batch_size: items per batch.
        steps_per_epoch: batches per epoch (None: one pass over ``train_data``).
        optimizer, learning_rate, lr_schedule, augmentation: None for the model's `recipe`;
            ``lr_schedule`` is ``'plateau'`` (ReduceLROnPlateau + EarlyStopping), ``'ssd300'``
            (`ssd300_lr_schedule`) or ``'constant'``; ``augmentation`` see
            `ssd_keras.data.training_transformations`.
        early_stopping_patience: patience of EarlyStopping with the ``'plateau'`` schedule
            (None: no early stopping).
        resume: continue the run in ``out_dir`` from its last backup.
        overwrite: delete a previous run in ``out_dir`` first.
        seed: seed of the weights, batch order and augmentation.
        strategy: a ``tf.distribute`` strategy (e.g. ``MirroredStrategy``, TensorFlow) or a
            ``keras.distribution`` distribution (e.g. ``DataParallel``, JAX) to build and train
            under, or None (see `ssd_keras.distribute`).
        workers: data loading threads of the ``PyDataset``.
        tensorboard: also write TensorBoard logs to ``out_dir/tensorboard``.
        extra_callbacks: more Keras callbacks (run before the logging/backup callbacks).
        verbose: passed to ``model.fit``.
        model: a training-mode Keras model to train instead of building ``config``'s (e.g. a
            filter-pruned or magnitude-pruned one). It must have ``config``'s anchors, classes
            and input size (its output is checked against the encoder); it is compiled here
            with the recipe's optimizer and loss. A fresh run saves it as
            ``initial_model.keras``, so ``resume=True`` without ``model`` rebuilds the same
            architecture before restoring the backup. A model with `PruneLowMagnitude`
            wrappers gets the `UpdatePruningStep` callback, and its saved ``model.keras`` /
            ``model_best.keras`` are stripped (plain layers, zeros in the kernels). Under a
            ``strategy``, build it inside ``strategy.scope()``.
        train_args: a JSON-able record of the arguments (the command line's), written to
            ``train_args.json`` in the run folder (``python -m ssd_keras train --resume``
            reads it back).
        backbone_weights: ``'imagenet'`` or a weights file path to initialise the backbone of
            a new run (SSD300/SSD512: the reduced VGG16 from ImageNet VGG16, SSDLite: its
            MobileNet); None: random. Ignored on resume (the backup holds the weights).
        loss: ``'softmax'`` (the original `SSDLoss`) or ``'focal'`` (`SSDLoss` with
            ``classification='focal'``, ``gamma=focal_gamma``, ``focal_alpha=focal_alpha``).
        focal_gamma, focal_alpha: the focal loss' parameters.
        mixed_precision: build the model under `mixed_precision_policy` (bfloat16 on CPUs,
            float16 with loss scaling on GPUs). The anchors, the softmax, the model output,
            the loss and the decoder stay float32. Ignored for a given ``model``.

    Returns:
        A `TrainResult`.
    """
    _check_counts(epochs, batch_size, steps_per_epoch)
    settings = TrainingRecipe.resolve(
        config.model,
        optimizer=optimizer,
        learning_rate=learning_rate,
        lr_schedule=lr_schedule,
        augmentation=augmentation,
        early_stopping_patience=early_stopping_patience,
        loss=loss,
        focal_gamma=focal_gamma,
        focal_alpha=focal_alpha,
    )
    policy = mixed_precision_policy() if mixed_precision else None

    out_dir = Path(out_dir)
    _prepare_run_folder(config, out_dir, resume, overwrite, int(epochs), train_args)
    keras.utils.set_random_seed(seed)
    model, encoder = _build_model(
        config, out_dir, model, resume, strategy, policy, None if resume else backbone_weights
    )
    _compile_model(model, settings, strategy)
    pruned = _has_pruning_wrappers(model)
    train_set, val_set = _build_datasets(
        config,
        encoder,
        train_data,
        val_data,
        augmentation=settings.augmentation,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        seed=seed,
        workers=workers,
        strategy=strategy,
    )
    callbacks = _build_callbacks(
        settings,
        out_dir,
        train_set,
        monitor="val_loss" if val_set is not None else "loss",
        pruned=pruned,
        tensorboard=tensorboard,
        extra_callbacks=extra_callbacks,
    )
    history = _fit(model, train_set, val_set, out_dir, epochs, callbacks, resume, strategy, verbose)
    # BackupAndRestore sets this private attribute when it restores a backup.
    initial_epoch = int(getattr(model, "_initial_epoch", None) or 0)
    paths = _save_results(model, out_dir, pruned)
    return TrainResult(model, dict(history.history), out_dir, initial_epoch, paths)


@dataclasses.dataclass(frozen=True)
class TrainingRecipe:
    """A run's optimizer, learning-rate schedule, augmentation and loss, with the model's
    `recipe` filled in where the caller gave None (the options of `train` of the same names)."""

    optimizer: str
    learning_rate: float
    lr_schedule: str
    augmentation: str
    early_stopping_patience: int | None = 10
    loss: str = "softmax"
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25

    @classmethod
    def resolve(
        cls,
        model: str,
        optimizer: str | None = None,
        learning_rate: float | None = None,
        lr_schedule: str | None = None,
        augmentation: str | None = None,
        early_stopping_patience: int | None = 10,
        loss: str = "softmax",
        focal_gamma: float = 2.0,
        focal_alpha: float = 0.25,
    ) -> TrainingRecipe:
        """The recipe of ``model`` (a `RunConfig.model` name) overridden by the given options;
        raises ``ValueError`` naming an unknown or out-of-range option."""
        defaults = recipe(model)
        settings = cls(
            optimizer=optimizer or defaults["optimizer"],
            learning_rate=(
                defaults["learning_rate"] if learning_rate is None else float(learning_rate)
            ),
            lr_schedule=lr_schedule or defaults["lr_schedule"],
            augmentation=augmentation or defaults["augmentation"],
            early_stopping_patience=early_stopping_patience,
            loss=loss,
            focal_gamma=focal_gamma,
            focal_alpha=focal_alpha,
        )
        if settings.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {list(OPTIMIZERS)}, got {settings.optimizer!r}"
            )
        if settings.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {settings.lr_schedule!r}"
            )
        if not settings.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {settings.learning_rate!r}")
        if settings.loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, got {settings.loss!r}")
        return settings


def _check_counts(epochs, batch_size, steps_per_epoch) -> None:
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if steps_per_epoch is not None and int(steps_per_epoch) < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch!r}")


def _prepare_run_folder(
    config: RunConfig, out_dir: Path, resume: bool, overwrite: bool, epochs: int, train_args
) -> None:
    """Checks ``out_dir`` (and, on resume, its saved configuration) and writes the run's
    ``config.json`` and ``train_args.json``."""
    _check_out_dir(out_dir, resume, overwrite, epochs)
    if resume:
        saved = RunConfig.load(out_dir)
        if json.dumps(saved.to_json(), sort_keys=True) != json.dumps(
            config.to_json(), sort_keys=True
        ):
            raise ValueError(
                f"{out_dir / 'config.json'} differs from the configuration given for the resumed "
                "run; resume with the saved one (RunConfig.load(out_dir))"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    config.save(out_dir)
    if train_args is not None:
        (out_dir / TRAIN_ARGS_FILE).write_text(json.dumps(train_args, indent=2) + "\n")


def _build_model(
    config: RunConfig, out_dir: Path, model, resume, strategy, policy, backbone_weights
):
    """The training-mode model (the given one, the resumed run's initial model or a new one of
    ``config``) and the encoder of its predictor layers, checked against each other."""
    initial_file = out_dir / INITIAL_MODEL
    if model is None and resume and initial_file.is_file():
        model = _load_initial_model(initial_file, strategy)
    elif model is not None and not resume:
        model.save(initial_file)
    if model is None:
        with _scope(strategy), dtype_policy(policy):
            model, predictor_sizes = config.build_model(
                "training",
                return_predictor_sizes=True,
                backbone_weights=backbone_weights,
            )
    else:
        predictor_sizes = config.predictor_sizes()
    encoder = config.build_encoder(predictor_sizes)
    _check_model_output(model, config, encoder)
    return model, encoder


def _compile_model(model: keras.Model, settings: TrainingRecipe, strategy) -> None:
    from keras_loss_function.keras_ssd_loss import SSDLoss

    with _scope(strategy):
        training_optimizer = make_optimizer(settings.optimizer, settings.learning_rate)
        if model.dtype_policy.name == "mixed_float16":
            # float16 gradients underflow without it; bfloat16 has float32's exponent range.
            training_optimizer = keras.optimizers.LossScaleOptimizer(training_optimizer)
        model.compile(
            optimizer=training_optimizer,
            loss=SSDLoss(
                neg_pos_ratio=3,
                alpha=1.0,
                classification=settings.loss,
                gamma=settings.focal_gamma,
                focal_alpha=settings.focal_alpha,
            ),
        )


def _build_datasets(
    config: RunConfig,
    encoder,
    train_data,
    val_data,
    *,
    augmentation: str,
    batch_size: int,
    steps_per_epoch: int | None,
    seed: int,
    workers: int,
    strategy,
):
    """The training ``PyDataset`` (augmented, shuffled, encoded) and the validation one (or
    None)."""
    # Keras' distribution API (JAX) splits each batch evenly over the devices, so batches must
    # stay full: there, images without boxes (in the data or after augmentation) are kept as
    # all-background examples instead of being dropped from their batch.
    keep_empty = strategy is not None and hasattr(strategy, "device_mesh")
    if keep_empty:
        _check_full_batches("training", train_data, batch_size, strategy)
        if val_data is not None:
            _check_full_batches("validation", val_data, batch_size, strategy)
    train_set = train_data.to_py_dataset(
        batch_size=batch_size,
        shuffle=True,
        transformations=training_transformations(config, augmentation, seed),
        label_encoder=encoder,
        seed=seed,
        workers=workers,
        keep_images_without_gt=keep_empty,
    )
    if steps_per_epoch is not None:
        train_set = FixedStepsDataset(train_set, steps_per_epoch)
    val_set = None
    if val_data is not None:
        val_set = val_data.to_py_dataset(
            batch_size=batch_size,
            shuffle=False,
            transformations=training_transformations(config, "none"),
            label_encoder=encoder,
            seed=seed,
            workers=workers,
            keep_images_without_gt=keep_empty,
        )
    return train_set, val_set


def _build_callbacks(
    settings: TrainingRecipe,
    out_dir: Path,
    train_set,
    *,
    monitor: str,
    pruned: bool,
    tensorboard: bool,
    extra_callbacks,
) -> list:
    """The run's callbacks in order: dataset epoch, the caller's, pruning step, learning rate
    and early stopping, NaN stop, best-model checkpoint, CSV log, TensorBoard, backup (last:
    it saves the state of all the others)."""
    callbacks = [DatasetEpoch(train_set), *extra_callbacks]
    if pruned:
        from model_optimization import UpdatePruningStep

        if not any(isinstance(c, UpdatePruningStep) for c in callbacks):
            # Before the backup, so the masks it saves are those of the finished batch; the
            # callback reads the schedule's step at the first batch, after the backup restored it.
            callbacks.insert(1, UpdatePruningStep())
    if settings.lr_schedule == "ssd300":
        # The notebook's steps (x0.1 at epoch 80, x0.01 at 100), relative to the initial rate.
        base = settings.learning_rate

        def schedule(epoch, lr=None):
            return base * ssd300_lr_schedule(epoch) / ssd300_lr_schedule(0)

        callbacks.append(keras.callbacks.LearningRateScheduler(schedule))
    elif settings.lr_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor, factor=0.2, patience=8, min_delta=0.001, min_lr=1e-5
            )
        )
        if settings.early_stopping_patience is not None:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor=monitor, min_delta=0.0, patience=int(settings.early_stopping_patience)
                )
            )
    callbacks += [
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(
            str(out_dir / "model_best.keras"), monitor=monitor, save_best_only=True
        ),
        keras.callbacks.CSVLogger(str(out_dir / LOG_FILE), append=True),
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out_dir / "tensorboard")))
    callbacks.append(TrainingBackup(out_dir / BACKUP_DIR, callbacks=callbacks))
    return callbacks


def _fit(model, train_set, val_set, out_dir: Path, epochs, callbacks, resume, strategy, verbose):
    """``model.fit`` from the first epoch or, on resume, from the backup's epoch."""
    if resume:
        # BackupAndRestore sets the initial epoch only in on_train_begin; the dataset must know
        # it before fit builds its iterator (which may fetch batches before on_epoch_begin).
        metadata = out_dir / BACKUP_DIR / "training_metadata.json"
        if metadata.is_file():
            train_set.set_epoch(int(json.loads(metadata.read_text())["epoch"]))
    # Keras' distribution API (JAX) shards each batch only while its distribution is active.
    with _scope(strategy):
        return model.fit(
            train_set,
            validation_data=val_set,
            epochs=int(epochs),
            # The dataset shuffles itself from (seed, epoch); Keras' own batch-order shuffling
            # draws from Python's global random state, which a resumed process does not share.
            shuffle=False,
            callbacks=callbacks,
            verbose=verbose,
        )


def _save_results(model: keras.Model, out_dir: Path, pruned: bool) -> dict:
    """Saves ``model.keras`` (and strips a pruned run's best model), plots the loss curve;
    returns the paths of the run's files."""
    paths = {"run": out_dir, "config": out_dir / "config.json", "log": out_dir / LOG_FILE}
    best_file = out_dir / "model_best.keras"
    if pruned:
        from model_optimization import strip_pruning

        # The pruning-wrapped model stays in the backup (resume); the saved models are plain.
        strip_pruning(model).save(out_dir / "model.keras")
        if best_file.exists():
            best = keras.models.load_model(best_file, compile=False)
            if _has_pruning_wrappers(best):
                strip_pruning(best).save(best_file)
    else:
        model.save(out_dir / "model.keras")
    paths["model"] = out_dir / "model.keras"
    if best_file.exists():
        paths["best_model"] = best_file
    curve = plot_loss_curve(out_dir / LOG_FILE, out_dir / "loss.png")
    if curve is not None:
        paths["loss_curve"] = curve
    return paths


class FixedStepsDataset(keras.utils.PyDataset):
    """A `DataGeneratorPyDataset` cut into epochs of ``steps`` batches.

    Keras treats ``fit(steps_per_epoch=...)`` on a finite dataset as a window on one stream that
    ends (with a warning and a short epoch) when the data runs out. This view instead makes
    epoch ``e`` the batches ``e * steps ... (e + 1) * steps - 1`` of the endless sequence of the
    underlying dataset's epochs, so every epoch has ``steps`` batches and each batch is still a
    pure function of ``(seed, epoch, batch)`` (resumes see the same batches).

    Batches are built one at a time (the underlying dataset's epoch is switched under a lock),
    so extra worker threads only prefetch.
    """

    def __init__(self, base, steps: int):
        super().__init__(workers=base.workers, use_multiprocessing=False, max_queue_size=10)
        self.base = base
        self.steps = int(steps)
        self.epoch = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def __getitem__(self, index: int):
        if not 0 <= index < self.steps:
            raise IndexError(f"batch index {index} out of range for {self.steps} batches")
        position = self.epoch * self.steps + index
        n_batches = len(self.base)
        with self._lock:
            self.base.set_epoch(position // n_batches)
            return self.base[position % n_batches]


def _load_initial_model(path: Path, strategy) -> keras.Model:
    import model_optimization  # noqa: F401  (registers PruneLowMagnitude for loading)
    import models  # noqa: F401  (registers the SSD layers)

    with _scope(strategy):
        return keras.models.load_model(path, compile=False)


def _has_pruning_wrappers(model) -> bool:
    return any(
        type(layer).__name__ == "PruneLowMagnitude"
        for layer in model._flatten_layers(include_self=False)
    )


def _check_model_output(model, config: RunConfig, encoder) -> None:
    """A given model must predict what ``config``'s encoder encodes (anchors x classes)."""
    expected = tuple(encoder.generate_encoding_template(1).shape[1:])
    shape = tuple(model.outputs[0].shape[1:]) if len(model.outputs) == 1 else None
    if shape != expected:
        raise ValueError(
            f"model {model.name!r} outputs shape {shape}, the run configuration encodes "
            f"{expected} (n_anchors, n_classes + 1 + 12): is it a training-mode model of this "
            f"configuration ({config.model}, {config.n_classes} classes, input "
            f"{config.image_size})?"
        )


def _check_full_batches(name: str, data, batch_size: int, strategy) -> None:
    """Refuses a dataset whose last batch cannot be split evenly over a distribution's devices
    (JAX stops such a run mid-epoch with an ``IndivisibleError``)."""
    import jax

    n_devices = max(1, int(strategy.device_mesh.devices.size) // jax.process_count())
    size = int(data.get_dataset_size())
    remainder = size % int(batch_size)
    if remainder and remainder % n_devices:
        raise ValueError(
            f"the {name} data has {size} images, so its last batch of batch_size {batch_size} "
            f"holds {remainder}, which cannot be split over {n_devices} devices; use a number of "
            "images or a batch size that leaves no such remainder"
        )


def _scope(strategy):
    """The scope of a ``tf.distribute`` strategy or a ``keras.distribution`` distribution."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()
