"""A run folder's ``train_args.json``, and what a rerun of a command does with an existing folder.

``train`` records its command-line arguments in ``RUN/train_args.json`` (the keys of
`TRAIN_DEFAULTS`). ``train --out RUN --resume`` continues the run with them; ``prune`` and
``export`` take the source run's training data (and ``prune`` its recipe) from them. These
decisions are taken here, before TensorFlow is imported:

- ``train`` into a folder that holds a trained run needs ``--resume`` or ``--overwrite``
  (`check_train_out`); a folder whose run stopped before its first epoch ended is started again.
- ``train --resume`` needs the backup of a finished epoch, refuses a run that already did the
  epochs asked ("finished at epoch N", `check_resume`) and arguments given with another value
  than the saved one, except ``--epochs`` (`merge_train_args`).
- A new run folder (``prune``) that is not empty needs ``--overwrite``, which only ever deletes
  run folders; one that a stopped command left half-written is started again
  (`check_new_run_folder`).

Nothing here imports Keras (`with_recipe` imports `ssd_keras.train` when it is called).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ssd_keras.cli_errors import CLIError
from ssd_keras.config import run_has_trained
from ssd_keras.dataset_args import CSV_FORMAT, DATA_KEYS, PATH_KEYS, dataset_given

TRAIN_ARGS_FILE = "train_args.json"
# What `train` saves and a resumed run reuses; value None = the model's recipe.
TRAIN_DEFAULTS = {
    "model": "ssd7",
    "image_size": None,
    "variances": None,
    "epochs": 10,
    "batch_size": 16,
    "steps_per_epoch": None,
    "optimizer": None,
    "lr": None,
    "lr_schedule": None,
    "augmentation": None,
    "early_stopping_patience": 10,
    "seed": 0,
    "backbone_weights": None,
    "anchors": None,
    "loss": "softmax",
    "focal_gamma": 2.0,
    "focal_alpha": 0.25,
    "mixed_precision": False,
    "data": None,
    "split": "train",
    "classes": None,
    "csv": None,
    "csv_format": CSV_FORMAT,
    "coco": None,
    "images": None,
    "val_split": None,
    "val_csv": None,
    "val_coco": None,
}
# Given on --resume with another value than the saved one, these win (and are saved).
RESUME_OVERRIDES = ("epochs",)
# The training options a fine-tuning run takes over from the source run's train_args.json.
SOURCE_RECIPE_KEYS = (
    "batch_size",
    "steps_per_epoch",
    "optimizer",
    "lr",
    "augmentation",
    "early_stopping_patience",
    "seed",
)
# Written at the end of every epoch by `ssd_keras.callbacks.TrainingBackup`.
BACKUP_WEIGHTS = "backup/latest.weights.h5"
BACKUP_METADATA = "backup/training_metadata.json"


def folder_of_run(run) -> Path:
    """The folder of a run given as its folder or as a model file inside it."""
    run = Path(run)
    return run if run.is_dir() else run.parent


def normalised(key: str, value):
    """The JSON form a train argument is saved in (absolute paths, lists, floats)."""
    if value is None:
        return None
    if key in PATH_KEYS or key == "anchors":
        return str(Path(value).resolve())
    if key == "backbone_weights":
        return value if value == "imagenet" else str(Path(value).resolve())
    if key in ("image_size", "variances"):
        return [float(v) if key == "variances" else int(v) for v in value]
    if key == "lr":
        return float(value)
    return value


def read_train_args(folder) -> dict | None:
    """The saved arguments of the run in ``folder``; None when it has no train_args.json."""
    path = Path(folder) / TRAIN_ARGS_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CLIError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(saved, dict):
        raise CLIError(f"{path}: expected a JSON object, got {type(saved).__name__}")
    return saved


def _show(value) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def merge_train_args(given: dict, saved: dict | None, out: Path) -> dict:
    """The arguments a run trains with: ``given`` (normalised, None = not given) over the
    defaults, or, resuming (``saved`` not None), over the saved ones.

    Raises:
        CLIError: resuming, an argument other than ``--epochs`` was given with another value
            than the saved one (the message names each, with both values).
    """
    if saved is None:
        return {k: (TRAIN_DEFAULTS[k] if v is None else v) for k, v in given.items()}
    conflicts = [
        f"--{key.replace('_', '-')} {_show(value)} (the run used {_show(saved.get(key))})"
        for key, value in given.items()
        if value is not None and value != saved.get(key) and key not in RESUME_OVERRIDES
    ]
    if conflicts:
        raise CLIError(
            f"--resume: {', '.join(conflicts)}; {out / TRAIN_ARGS_FILE} holds the run's "
            "arguments: drop these options (only --epochs may change on resume) or start a "
            "new run"
        )
    merged = {k: saved.get(k, TRAIN_DEFAULTS[k]) for k in TRAIN_DEFAULTS}
    merged.update({k: v for k, v in given.items() if v is not None})
    return merged


def resolve_train_args(args, out: Path) -> dict:
    """Merges the given arguments with the defaults, or on --resume with the saved ones; sets
    the result on ``args`` and returns it (the record to save)."""
    given = {key: normalised(key, getattr(args, key)) for key in TRAIN_DEFAULTS}
    saved = read_train_args(out) if args.resume else None
    merged = merge_train_args(given, saved, out)
    for key, value in merged.items():
        setattr(args, key, value)
    return merged


def with_recipe(record: dict, model: str) -> dict:
    """``record`` with the recipe's optimizer/lr/schedule/augmentation filled in (as trained)."""
    from ssd_keras.train import recipe

    defaults = recipe(model)
    filled = dict(record)
    for key, recipe_key in (
        ("optimizer", "optimizer"),
        ("lr", "learning_rate"),
        ("lr_schedule", "lr_schedule"),
        ("augmentation", "augmentation"),
    ):
        if filled.get(key) is None:
            filled[key] = defaults[recipe_key]
    return filled


def check_train_out(out: Path, resume: bool, overwrite: bool) -> None:
    """What ``train --out OUT`` may do with the folder: resume the run it holds (needs the
    backup of a finished epoch), replace it (--overwrite), or start a run where none trained."""
    if resume and overwrite:
        raise CLIError("--resume and --overwrite exclude each other")
    if resume and not (out / BACKUP_WEIGHTS).is_file():
        raise CLIError(f"--resume: nothing to resume in {out} (no {BACKUP_WEIGHTS})")
    if not resume and not overwrite and run_has_trained(out):
        raise CLIError(
            f"--out: {out} already holds a training run; add --resume to continue it or "
            "--overwrite to start over"
        )


def finished_epochs(out: Path) -> int | None:
    """The epochs the run in ``out`` has completed (from its backup); None when unknown."""
    try:
        return int(json.loads((out / BACKUP_METADATA).read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_resume(out: Path, epochs: int, dataset_options_given: bool) -> None:
    """A finished run (as many epochs done as asked) is refused before anything is loaded, and
    so is a run without train_args.json (older versions) resumed without its dataset options."""
    done = finished_epochs(out)
    if done is not None and done >= epochs:
        raise CLIError(
            f"--resume: the run in {out} finished at epoch {done}; raise --epochs above {done} "
            "to continue it"
        )
    if not dataset_options_given and not (out / TRAIN_ARGS_FILE).is_file():
        raise CLIError(
            f"--resume: {out} has no {TRAIN_ARGS_FILE} (a run from an older version); give its "
            "dataset options again (--data DIR, --csv FILE or --coco FILE)"
        )


def check_new_run_folder(out: Path, overwrite: bool) -> None:
    """Makes way for a new run in ``out``: an empty or missing folder is used as it is; a run
    folder left without a model (its command stopped early) is deleted; any other non-empty
    folder needs ``overwrite``, which only ever deletes run folders (with a config.json)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        unfinished = (out / "config.json").is_file() and not run_has_trained(out)
        if not overwrite and not unfinished:
            raise CLIError(f"--out: {out} exists and is not empty; add --overwrite to replace it")
        if not (out / "config.json").is_file():
            raise CLIError(
                f"--out: {out} is not a run folder (no config.json); --overwrite only replaces "
                "run folders, choose a new or empty folder"
            )
        shutil.rmtree(out)


def dataset_from_run(args, run_path: Path, what: str) -> None:
    """Without dataset options, take the source run's training data from its train_args.json."""
    if dataset_given(args):
        return
    saved = read_train_args(folder_of_run(run_path))
    if saved is None or not any(saved.get(k) for k in ("data", "csv", "coco")):
        raise CLIError(
            f"{what} needs a dataset (--data DIR, --csv FILE or --coco FILE); {run_path} has no "
            f"{TRAIN_ARGS_FILE} naming its training data"
        )
    for key in DATA_KEYS:
        if getattr(args, key, None) is None and key in saved:
            setattr(args, key, saved[key])


def fine_tuning_train_args(args, run: Path, config) -> dict:
    """The train_args.json record of a pruned run's fine-tuning (``prune --fine-tune-epochs``).

    Fine-tuning continues the source run's recipe unless an option says otherwise (the anchors,
    variances and encoder thresholds come with its config.json); before, the defaults replaced
    e.g. its batch size, optimizer, learning rate and augmentation. The options not given are
    set on ``args`` from the source run's train_args.json and the record.
    """
    source_args = read_train_args(folder_of_run(run)) or {}
    for key in SOURCE_RECIPE_KEYS:
        if getattr(args, key, None) is None and source_args.get(key) is not None:
            setattr(args, key, source_args[key])
    record = {k: normalised(k, getattr(args, k, None)) for k in TRAIN_DEFAULTS}
    record.update(
        model=config.model,
        image_size=list(config.image_size),
        variances=config.model_kwargs.get("variances"),
        epochs=args.fine_tune_epochs,
    )
    record = {k: (TRAIN_DEFAULTS[k] if v is None else v) for k, v in record.items()}
    if args.lr_schedule is None:
        record["lr_schedule"] = "constant"
    record = with_recipe(record, config.model)
    for key in ("batch_size", "seed", "early_stopping_patience", "lr_schedule"):
        if getattr(args, key) is None:
            setattr(args, key, record[key])
    return record
