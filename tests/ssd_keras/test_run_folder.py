"""ssd_keras.run_folder: what a rerun does with an existing run folder, and train_args.json.

Fast: folders are made by hand (the files a run writes, empty), nothing trains.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from ssd_keras.cli_errors import CLIError
from ssd_keras.run_folder import (
    TRAIN_ARGS_FILE,
    TRAIN_DEFAULTS,
    check_new_run_folder,
    check_resume,
    check_train_out,
    dataset_from_run,
    fine_tuning_train_args,
    finished_epochs,
    folder_of_run,
    merge_train_args,
    normalised,
    read_train_args,
    resolve_train_args,
)


def _touch(folder: Path, *names: str) -> Path:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    return folder


def _trained_run(folder: Path, epochs_done: int | None = None) -> Path:
    """The files of a run that finished ``epochs_done`` epochs (its backup)."""
    _touch(folder, "config.json", "backup/latest.weights.h5")
    if epochs_done is not None:
        (folder / "backup" / "training_metadata.json").write_text(
            json.dumps({"epoch": epochs_done})
        )
    return folder


def _given(**values) -> dict:
    """The normalised arguments of a command line that gives ``values`` (others not given)."""
    return {key: normalised(key, values.get(key)) for key in TRAIN_DEFAULTS}


# ---------------------------------------------------------------- train_args.json


def test_normalised_saves_absolute_paths_lists_and_floats(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalised("data", "voc") == str(tmp_path / "voc")
    assert normalised("anchors", "a.json") == str(tmp_path / "a.json")
    assert normalised("backbone_weights", "imagenet") == "imagenet"
    assert normalised("backbone_weights", "w.h5") == str(tmp_path / "w.h5")
    assert normalised("image_size", (64, 96)) == [64, 96]
    assert normalised("variances", (1, 1, 2, 2)) == [1.0, 1.0, 2.0, 2.0]
    assert normalised("lr", 1) == 1.0 and isinstance(normalised("lr", 1), float)
    assert normalised("batch_size", 8) == 8
    assert normalised("split", None) is None


def test_read_train_args_names_the_file_of_a_bad_record(tmp_path):
    assert read_train_args(tmp_path) is None  # no file: a run from an older version
    (tmp_path / TRAIN_ARGS_FILE).write_text('{"epochs": 3}')
    assert read_train_args(tmp_path) == {"epochs": 3}
    (tmp_path / TRAIN_ARGS_FILE).write_text("{not json")
    with pytest.raises(CLIError, match=f"{TRAIN_ARGS_FILE}: not valid JSON"):
        read_train_args(tmp_path)
    (tmp_path / TRAIN_ARGS_FILE).write_text("[1, 2]")
    with pytest.raises(CLIError, match="expected a JSON object, got list"):
        read_train_args(tmp_path)


def test_new_run_takes_the_defaults_for_what_is_not_given(tmp_path):
    merged = merge_train_args(_given(batch_size=4, epochs=2), None, tmp_path)
    assert merged == {**TRAIN_DEFAULTS, "batch_size": 4, "epochs": 2}


def test_resume_takes_the_saved_arguments_and_allows_more_epochs(tmp_path):
    saved = {**TRAIN_DEFAULTS, "batch_size": 4, "epochs": 2, "data": "/data/voc"}
    del saved["loss"]  # saved by an older version: its default fills in
    merged = merge_train_args(_given(batch_size=4, epochs=5), saved, tmp_path)
    assert merged == {**TRAIN_DEFAULTS, "batch_size": 4, "epochs": 5, "data": "/data/voc"}


def test_resume_refuses_changed_arguments_naming_both_values(tmp_path):
    saved = {**TRAIN_DEFAULTS, "batch_size": 4, "image_size": [64, 96]}
    with pytest.raises(CLIError) as error:
        merge_train_args(_given(batch_size=8, image_size=(64, 64)), saved, tmp_path)
    message = str(error.value)
    assert "--batch-size 8 (the run used 4)" in message
    assert "--image-size 64 64 (the run used 64 96)" in message
    assert str(tmp_path / TRAIN_ARGS_FILE) in message and "only --epochs" in message


def test_resolve_train_args_sets_the_merged_values_on_the_arguments(tmp_path):
    saved = {**TRAIN_DEFAULTS, "batch_size": 4, "seed": 7}
    (tmp_path / TRAIN_ARGS_FILE).write_text(json.dumps(saved))
    args = argparse.Namespace(**dict.fromkeys(TRAIN_DEFAULTS), resume=True)
    args.epochs = 20
    record = resolve_train_args(args, tmp_path)
    assert record == {**saved, "epochs": 20}
    assert (args.batch_size, args.seed, args.epochs) == (4, 7, 20)


# ---------------------------------------------------------------- train --out


def test_train_into_a_folder_without_a_trained_run_is_allowed(tmp_path):
    check_train_out(tmp_path / "new", resume=False, overwrite=False)
    # What a run that stopped before its first epoch ended leaves: started again.
    half = _touch(tmp_path / "half", "config.json", TRAIN_ARGS_FILE, "training_log.csv")
    check_train_out(half, resume=False, overwrite=False)


def test_train_into_a_trained_run_needs_resume_or_overwrite(tmp_path):
    for model_file in ("model.keras", "model_best.keras", "backup/latest.weights.h5"):
        run = _touch(tmp_path / model_file.replace("/", "_"), "config.json", model_file)
        with pytest.raises(CLIError, match="already holds a training run; add --resume"):
            check_train_out(run, resume=False, overwrite=False)
        check_train_out(run, resume=False, overwrite=True)


def test_resume_needs_the_backup_of_a_finished_epoch(tmp_path):
    run = _touch(tmp_path / "run", "config.json", "model.keras")
    with pytest.raises(CLIError, match=r"nothing to resume in .*run \(no backup/latest"):
        check_train_out(run, resume=True, overwrite=False)
    _trained_run(run)
    check_train_out(run, resume=True, overwrite=False)
    with pytest.raises(CLIError, match="--resume and --overwrite exclude each other"):
        check_train_out(run, resume=True, overwrite=True)


def test_finished_run_is_refused_until_epochs_are_raised(tmp_path):
    run = _trained_run(tmp_path / "run", epochs_done=3)
    _touch(run, TRAIN_ARGS_FILE)
    assert finished_epochs(run) == 3
    for epochs in (2, 3):
        with pytest.raises(CLIError, match="finished at epoch 3; raise --epochs above 3"):
            check_resume(run, epochs, dataset_options_given=True)
    check_resume(run, 4, dataset_options_given=False)


def test_unreadable_backup_metadata_does_not_block_a_resume(tmp_path):
    run = _trained_run(tmp_path / "run")
    assert finished_epochs(run) is None  # no metadata
    for text in ("{broken", '{"step": 3}', '{"epoch": null}', "[3]"):
        (run / "backup" / "training_metadata.json").write_text(text)
        assert finished_epochs(run) is None, text
        check_resume(run, 1, dataset_options_given=True)


def test_resume_without_train_args_needs_the_dataset_options(tmp_path):
    run = _trained_run(tmp_path / "run", epochs_done=1)
    with pytest.raises(CLIError, match=f"no {TRAIN_ARGS_FILE} .*--data DIR"):
        check_resume(run, 2, dataset_options_given=False)
    check_resume(run, 2, dataset_options_given=True)


# ---------------------------------------------------------------- a new run folder (prune)


def test_new_run_folder_missing_or_empty_is_used_as_it_is(tmp_path):
    check_new_run_folder(tmp_path / "missing", overwrite=False)
    (tmp_path / "empty").mkdir()
    check_new_run_folder(tmp_path / "empty", overwrite=True)
    assert (tmp_path / "empty").is_dir()


def test_half_written_run_folder_is_started_again(tmp_path):
    half = _touch(tmp_path / "half", "config.json", "pruning_report.json")
    check_new_run_folder(half, overwrite=False)
    assert not half.exists()


def test_trained_run_folder_is_replaced_only_with_overwrite(tmp_path):
    run = _touch(tmp_path / "run", "config.json", "model.keras")
    with pytest.raises(CLIError, match="exists and is not empty; add --overwrite"):
        check_new_run_folder(run, overwrite=False)
    assert (run / "model.keras").is_file()
    check_new_run_folder(run, overwrite=True)
    assert not run.exists()


def test_overwrite_never_deletes_a_folder_that_is_not_a_run(tmp_path):
    other = _touch(tmp_path / "photos", "holiday.jpg")
    with pytest.raises(CLIError, match="exists and is not empty"):
        check_new_run_folder(other, overwrite=False)
    with pytest.raises(CLIError, match="is not a run folder \\(no config.json\\)"):
        check_new_run_folder(other, overwrite=True)
    assert (other / "holiday.jpg").is_file()
    a_file = _touch(tmp_path, "notes.txt") / "notes.txt"
    with pytest.raises(CLIError, match="is not a run folder"):
        check_new_run_folder(a_file, overwrite=True)
    assert a_file.is_file()


# ---------------------------------------------------------------- the source run's dataset


def _dataset_args(**values) -> argparse.Namespace:
    keys = ("data", "split", "classes", "csv", "csv_format", "coco", "images")
    keys += ("val_split", "val_csv", "val_coco")
    return argparse.Namespace(**{key: values.get(key) for key in keys})


def test_dataset_comes_from_the_source_runs_train_args(tmp_path):
    run = _touch(tmp_path / "run", "config.json", "model.keras")
    saved = {**TRAIN_DEFAULTS, "data": "/data/voc", "val_split": "val", "classes": "bg,a"}
    (run / TRAIN_ARGS_FILE).write_text(json.dumps(saved))
    assert folder_of_run(run / "model.keras") == folder_of_run(run) == run
    args = _dataset_args(split="trainval")  # given: kept
    dataset_from_run(args, run / "model.keras", "--fine-tune-epochs")
    assert (args.data, args.split, args.val_split, args.classes) == (
        "/data/voc",
        "trainval",
        "val",
        "bg,a",
    )
    given = _dataset_args(csv="/labels.csv")  # a dataset given: nothing taken over
    dataset_from_run(given, run, "--fine-tune-epochs")
    assert given.data is None and given.val_split is None


def test_dataset_from_a_run_without_train_args_names_what_is_needed(tmp_path):
    run = _touch(tmp_path / "run", "config.json", "model.keras")
    with pytest.raises(CLIError) as error:
        dataset_from_run(_dataset_args(), run, "--quantization int8 (calibration images)")
    assert str(error.value) == (
        "--quantization int8 (calibration images) needs a dataset (--data DIR, --csv FILE or "
        f"--coco FILE); {run} has no {TRAIN_ARGS_FILE} naming its training data"
    )


def test_fine_tuning_continues_the_source_runs_recipe(tmp_path):
    from ssd_keras.train import recipe

    run = _touch(tmp_path / "run", "config.json", "model.keras")
    saved = {**TRAIN_DEFAULTS, "batch_size": 4, "optimizer": "sgd", "lr": 0.01, "seed": 5}
    (run / TRAIN_ARGS_FILE).write_text(json.dumps(saved))
    args = argparse.Namespace(**dict.fromkeys(TRAIN_DEFAULTS), fine_tune_epochs=3)
    args.seed = 9  # given: wins over the source run's
    config = SimpleNamespace(
        model="ssd7", image_size=(64, 96), model_kwargs={"variances": [1.0, 1.0, 2.0, 2.0]}
    )
    record = fine_tuning_train_args(args, run / "model.keras", config)
    assert record["batch_size"] == 4 and record["optimizer"] == "sgd" and record["lr"] == 0.01
    assert record["seed"] == 9 and record["epochs"] == 3
    assert record["image_size"] == [64, 96] and record["variances"] == [1.0, 1.0, 2.0, 2.0]
    assert record["lr_schedule"] == "constant"  # fine-tuning's default
    assert record["augmentation"] == recipe("ssd7")["augmentation"]
    assert (args.batch_size, args.seed, args.lr_schedule) == (4, 9, "constant")
    assert args.early_stopping_patience == TRAIN_DEFAULTS["early_stopping_patience"]
