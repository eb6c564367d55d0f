"""What a new user hits on real data (issue 14): damaged images, too small inputs, finished or
half-written runs, foreign class sets, damaged model files. Every bad input gives exit status 2
and one line naming the file or option, and the same command succeeds once the input is fixed,
without --overwrite."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data_generator.data_report import DataWarning
from ssd_keras.cli import main

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TRAIN = ["--image-size", "64", "96", "--steps-per-epoch", "1", "--batch-size", "4", "--quiet"]


def _cli_error(argv, capsys) -> str:
    """Runs the CLI, expects exit status 2, returns stderr (one line)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1, err
    return errors[0]


def _damage(image: Path, how: str) -> bytes:
    """Damages an image file as a user's copy might be; returns the original bytes."""
    original = image.read_bytes()
    if how == "truncated":
        image.write_bytes(original[: len(original) // 3])
    elif how == "empty":
        image.write_bytes(b"")
    else:
        image.write_text("this is not an image\n")
    return original


@pytest.fixture()
def shapes_copy(tiny_shapes, tmp_path):
    """A private copy of the tiny shapes dataset, to damage."""
    root = tmp_path / "shapes"
    shutil.copytree(tiny_shapes["root"], root)
    return root


def _ids(root: Path, split: str) -> list[str]:
    return (root / "ImageSets" / "Main" / f"{split}.txt").read_text().split()


@pytest.fixture(scope="module")
def trained_run(tiny_shapes, tmp_path_factory):
    """A one-epoch SSD7 run on the tiny shapes."""
    run = tmp_path_factory.mktemp("run") / "run"
    assert (
        main(["train", "--data", tiny_shapes["root"], "--epochs", "1", "--out", str(run)] + TRAIN)
        == 0
    )
    return run


def test_train_drops_undecodable_images_and_names_them(shapes_copy, tmp_path):
    ids = _ids(shapes_copy, "train")
    damaged = {ids[0]: "truncated", ids[1]: "empty", ids[2]: "text"}
    for image_id, how in damaged.items():
        _damage(shapes_copy / "JPEGImages" / f"{image_id}.jpg", how)
    run = tmp_path / "run"
    with pytest.warns(DataWarning) as caught:
        code = main(
            ["train", "--data", str(shapes_copy), "--epochs", "1", "--out", str(run)] + TRAIN
        )
    assert code == 0
    report = "\n".join(str(w.message) for w in caught)
    assert "3 dropped image" in report
    for image_id in damaged:
        assert f"{image_id}.jpg: unreadable image" in report
    assert (run / "model.keras").is_file()


def test_bad_image_with_bad_items_raise_stops_cleanly_and_rerun_succeeds(
    shapes_copy, tmp_path, capsys
):
    image = shapes_copy / "JPEGImages" / f"{_ids(shapes_copy, 'train')[5]}.jpg"
    original = _damage(image, "truncated")
    run = tmp_path / "run"
    argv = ["train", "--data", str(shapes_copy), "--epochs", "1", "--out", str(run)] + TRAIN
    err = _cli_error(argv + ["--bad-items", "raise"], capsys)
    assert str(image) in err and "not a decodable image" in err and "--bad-items drop" in err
    image.write_bytes(original)
    assert main(argv + ["--bad-items", "raise"]) == 0
    assert (run / "model.keras").is_file()


@pytest.mark.slow
def test_a_run_that_never_trained_does_not_block_its_rerun(tiny_shapes, tmp_path):
    # What a run that stopped before its first epoch ended leaves behind.
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "train_args.json").write_text("{}")
    (run / "training_log.csv").write_text("")
    argv = ["train", "--data", tiny_shapes["root"], "--epochs", "1", "--out", str(run)] + TRAIN
    assert main(argv) == 0
    assert json.loads((run / "config.json").read_text())["model"] == "ssd7"
    assert len((run / "training_log.csv").read_text().splitlines()) == 2


def test_too_small_image_size_is_refused_before_anything_is_written(tiny_shapes, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "--data", tiny_shapes["root"], "--epochs", "1", "--out", str(run)]
    rest = TRAIN[3:]
    for size in (["32", "32"], ["37", "53"], ["63", "96"]):
        err = _cli_error(base + ["--image-size", *size] + rest, capsys)
        assert "--image-size" in err and f"{size[0]} x {size[1]}" in err and "at least 64" in err
        assert not (run / "config.json").exists()
    assert main(base + ["--image-size", "64", "64"] + rest) == 0


@pytest.mark.parametrize(
    ("model", "minimum"),
    [("ssd7", 64), pytest.param("ssd300", 257, marks=pytest.mark.slow)],
)
def test_min_image_side_is_the_real_minimum(model, minimum):
    """The builder works at the minimum and fails inside Keras one pixel below it."""
    from ssd_keras.config import RunConfig, min_image_side

    assert min_image_side(model) == minimum
    other = 300 if model == "ssd7" else 300
    config = RunConfig.create(model, ["background", "a"], image_size=(minimum, other))
    model_, sizes = config.build_model(return_predictor_sizes=True)
    assert min(sizes.min(axis=0)) >= 1
    config.image_size = (minimum - 1, other)
    with pytest.raises(ValueError, match="zero or negative|negative dimension|must be"):
        config.build_model()
    with pytest.raises(ValueError, match=f"at least {minimum}"):
        RunConfig.create(model, ["background", "a"], image_size=(minimum - 1, other))


def test_min_image_side_of_ssdlite_is_its_backbone_minimum(tiny_shapes, tmp_path, capsys):
    """SSDLite's MobileNet (``keras.applications``) refuses sides below 32, and at 32 every
    feature map keeps a cell. `min_image_side` used to return None for SSDLite, so the CLI's
    ``--image-size`` check let a too small size through to an error that did not name it."""
    from ssd_keras.config import RunConfig, check_image_size, min_image_side

    assert min_image_side("ssdlite") == 32
    config = RunConfig.create("ssdlite", ["background", "a"], image_size=(32, 300))
    _, sizes = config.build_model(return_predictor_sizes=True)
    assert min(sizes.min(axis=0)) >= 1
    config.image_size = (31, 300)
    with pytest.raises(ValueError, match=">= 32"):
        config.build_model()
    with pytest.raises(ValueError, match="31 x 300 is too small for ssdlite.* at least 32"):
        check_image_size("ssdlite", (31, 300))
    run = tmp_path / "run"
    argv = ["train", "--data", tiny_shapes["root"], "--epochs", "1", "--out", str(run)]
    err = _cli_error(argv + ["--model", "ssdlite", "--image-size", "16", "16"], capsys)
    assert "--image-size" in err and "16 x 16" in err and "at least 32" in err
    assert not run.exists()


def test_resume_of_a_finished_run_says_so_and_rewrites_nothing(trained_run, tiny_shapes, capsys):
    model_file = trained_run / "model.keras"
    before = model_file.stat().st_mtime_ns
    err = _cli_error(["train", "--out", str(trained_run), "--resume"], capsys)
    assert "finished at epoch 1" in err and "--epochs" in err
    assert model_file.stat().st_mtime_ns == before


@pytest.mark.slow
def test_resume_of_a_finished_run_with_more_epochs_continues(tiny_shapes, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(["train", "--data", tiny_shapes["root"], "--epochs", "1", "--out", str(run)] + TRAIN)
        == 0
    )
    _cli_error(["train", "--out", str(run), "--resume"], capsys)
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    assert "trained epochs 2..2 of 2" in capsys.readouterr().out


def test_evaluate_drops_a_damaged_test_image(trained_run, shapes_copy, capsys):
    image_id = _ids(shapes_copy, "test")[0]
    _damage(shapes_copy / "JPEGImages" / f"{image_id}.jpg", "empty")
    with pytest.warns(DataWarning, match=f"{image_id}.jpg: unreadable image"):
        code = main(
            [
                "evaluate",
                "--run",
                str(trained_run),
                "--data",
                str(shapes_copy),
                "--split",
                "test",
                "--json",
            ]
        )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["n_images"] == 5


def test_predict_skips_and_names_a_bad_image_and_does_the_rest(
    trained_run, shapes_copy, tmp_path, capsys
):
    images = shapes_copy / "JPEGImages"
    bad = images / f"{_ids(shapes_copy, 'test')[0]}.jpg"
    original = _damage(bad, "text")
    out = tmp_path / "pred"
    argv = ["predict", "--run", str(trained_run), str(images), "--out", str(out)]
    err = _cli_error(argv, capsys)
    assert str(bad) in err and "not a decodable image" in err
    pictures = sorted(p.name for p in out.glob("*_pred.jpg"))
    assert len(pictures) == 21 and f"{bad.stem}_pred.jpg" not in pictures
    bad.write_bytes(original)
    assert main(argv) == 0
    assert len(list(out.glob("*_pred.jpg"))) == 22


def test_evaluate_on_another_class_set_is_one_short_line(trained_run, shapes_copy, capsys):
    # Another dataset: no classes.txt, objects of classes the run does not know.
    (shapes_copy / "classes.txt").unlink()
    for xml in (shapes_copy / "Annotations").glob("*.xml"):
        text = xml.read_text()
        xml.write_text(
            text.replace("<name>circle<", "<name>RBC<").replace("<name>square<", "<name>WBC<")
        )
    argv = ["evaluate", "--run", str(trained_run), "--data", str(shapes_copy), "--split", "test"]
    err = _cli_error(argv, capsys)
    assert len(err) < 400, err
    assert "RBC, WBC" in err and "background, circle, square" in err
    assert "--unknown-classes drop" in err and "unknown_classes=" not in err
    with pytest.warns(DataWarning):
        assert main(argv + ["--unknown-classes", "drop", "--json"]) == 0


def test_a_runs_model_keras_loads_after_import_models(trained_run):
    """The README's promise, in a fresh interpreter: `import models` is enough to load a run's
    compiled model.keras (it references SSDLoss)."""
    code = (
        "import keras, models, sys\n"
        f"model = keras.models.load_model({str(trained_run / 'model.keras')!r})\n"
        "print(type(model.loss).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("SSDLoss")


def test_damaged_model_files_are_named(trained_run, tiny_shapes, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    model = run / "model.keras"
    model.write_bytes(model.read_bytes()[:5000])
    image = str(
        Path(tiny_shapes["images_dir"]) / f"{_ids(Path(tiny_shapes['root']), 'test')[0]}.jpg"
    )
    out = str(tmp_path / "pred")
    err = _cli_error(["predict", "--run", str(model), image, "--out", out], capsys)
    assert str(model) in err and "damaged or truncated" in err and "File not found" not in err
    # The run folder: model_best.keras is loaded, and the damaged model.keras is named.
    assert main(["predict", "--run", str(run), image, "--out", out]) == 0
    err = capsys.readouterr().err
    assert f"model: {run / 'model_best.keras'}" in err
    assert f"{model}: damaged or truncated" in err
    # A damaged model_best.keras: model.keras (whole again) is used instead.
    shutil.copy(trained_run / "model.keras", model)
    assert main(["predict", "--run", str(model), image, "--out", out]) == 0  # the fixed file
    capsys.readouterr()
    best = run / "model_best.keras"
    best.write_bytes(best.read_bytes()[:-100])
    assert main(["predict", "--run", str(run), image, "--out", out]) == 0
    err = capsys.readouterr().err
    assert f"{best}: damaged or truncated" in err and f"model: {model}" in err


def test_data_report_counts_dropped_items_and_says_what_happens_to_kept_boxes(
    shared_data_dir, tmp_path
):
    """One missing image in BCCD train is one dropped image; the zero-size box also reported is a
    note (kept in the labels, left out of every batch), not a second bad item."""
    from ssd_keras.data import load_voc

    source = shared_data_dir / "bccd" / "BCCD"
    root = tmp_path / "bccd"
    (root / "JPEGImages").mkdir(parents=True)
    for name in ("Annotations", "ImageSets"):
        (root / name).symlink_to(source / name)
    for image in (source / "JPEGImages").iterdir():
        (root / "JPEGImages" / image.name).symlink_to(image)
    missing = root / "JPEGImages" / "BloodImage_00001.jpg"
    missing.unlink()
    classes = ["background", "RBC", "WBC", "Platelets"]
    with pytest.warns(DataWarning) as caught:
        dataset = load_voc(root, "train", classes, check_images=False)
    summary = str(caught[0].message)
    assert summary.splitlines()[0] == "parse_xml: 1 dropped image, 1 kept:"
    assert "2 bad item" not in summary
    kept = dataset.data_report.with_action("kept")[0]
    assert "zero-size or inverted box [181, 329, 181, 329]" in kept.reason
    assert "removes it from every batch" in kept.reason


def test_prune_compares_map_before_and_after_and_warns(tiny_shapes, tmp_path, capsys):
    """prune evaluates the source and the pruned model on the source run's validation split and
    warns loudly when the pruned model lost more than a few mAP points."""
    from ssd_keras.optimize import format_pruning_report

    run = tmp_path / "run"
    argv = ["train", "--data", tiny_shapes["root"], "--val-split", "test", "--epochs", "1"]
    assert main(argv + ["--out", str(run)] + TRAIN) == 0
    capsys.readouterr()
    out = tmp_path / "pruned"
    argv = ["prune", "--run", str(run), "--method", "filters", "--amount", "0.5"]
    assert main(argv + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "pruning_report.json").read_text())
    assert 0 <= report["map_before"] <= 1 and 0 <= report["map_after"] <= 1
    assert f"{report['map_before']:.4f} -> {report['map_after']:.4f}" in printed
    worse = {**report, "map_before": 0.435, "map_after": 0.03}
    assert "WARNING: the pruned model lost 40.5 mAP points" in format_pruning_report(worse)
    same = {**report, "map_before": 0.435, "map_after": 0.43}
    assert "WARNING" not in format_pruning_report(same)


def test_prune_fine_tunes_with_the_source_recipe_and_reports_first(tiny_shapes, tmp_path, capsys):
    """The fine-tuning takes the source run's batch size, optimizer, learning rate and
    augmentation (the defaults used to replace them), and the pruning table is printed before
    the fine-tuning starts."""
    run = tmp_path / "run"
    argv = ["train", "--data", tiny_shapes["root"], "--epochs", "1", "--out", str(run)]
    argv += ["--image-size", "64", "96", "--steps-per-epoch", "1", "--batch-size", "2"]
    argv += ["--optimizer", "sgd", "--lr", "0.0005", "--augmentation", "none", "--quiet"]
    assert main(argv) == 0
    capsys.readouterr()
    out = tmp_path / "pruned"
    argv = ["prune", "--run", str(run), "--method", "filters", "--amount", "0.25"]
    assert main(argv + ["--fine-tune-epochs", "1", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    used = json.loads((out / "train_args.json").read_text())
    assert used["batch_size"] == 2 and used["steps_per_epoch"] == 1
    assert used["optimizer"] == "sgd" and used["lr"] == 0.0005 and used["augmentation"] == "none"
    assert printed.index("conv1 ") < printed.index("fine-tuning 1 epoch(s)")
    assert printed.index("fine-tuning 1 epoch(s)") < printed.index("fine-tuned 1 epoch(s)")
    assert printed.count("conv1 ") == 1


@pytest.mark.slow
def test_cli_hides_tensorflow_start_up_lines_unless_debugging(trained_run, tiny_shapes):
    argv = [sys.executable, "-m", "ssd_keras", "evaluate", "--run", str(trained_run)]
    argv += ["--data", tiny_shapes["root"], "--split", "test", "--json"]
    env = {k: v for k, v in os.environ.items() if k not in ("SSD_KERAS_DEBUG", "KERAS_BACKEND")}
    env["KERAS_BACKEND"] = "tensorflow"
    done = subprocess.run(
        argv, capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for noise in ("I0000", "oneDNN", "absl::InitializeLog", "rebuild TensorFlow"):
        assert noise not in done.stderr, done.stderr
    assert f"model: {trained_run}" in done.stderr  # the app's own lines still come through
    assert json.loads(done.stdout)["n_images"] == 6
    debug = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**env, "SSD_KERAS_DEBUG": "1"},
        timeout=600,
    )
    assert debug.returncode == 0
    assert "oneDNN" in debug.stderr or "I0000" in debug.stderr


def test_prune_into_a_folder_its_failed_run_left_works_without_overwrite(trained_run, tmp_path):
    out = tmp_path / "pruned"
    out.mkdir()
    (out / "config.json").write_text("{}")  # what a prune that stopped before a model leaves
    (out / "train_args.json").write_text("{}")
    argv = ["prune", "--run", str(trained_run), "--method", "filters", "--amount", "0.25"]
    assert main(argv + ["--out", str(out)]) == 0
    assert (out / "model.keras").is_file()
    assert json.loads((out / "config.json").read_text())["pruning"]["amount"] == 0.25


@pytest.mark.slow
def test_ctrl_c_during_training_gives_one_line_and_a_resumable_run(tiny_shapes, tmp_path):
    """A real SIGINT in the middle of training: exit 130 with the one 'interrupted' line, none of
    TensorFlow's op lines (`[[{{node PyFunc}}]]`) and no traceback; --resume continues."""
    import signal

    run = tmp_path / "run"
    argv = [sys.executable, "-m", "ssd_keras", "train", "--data", tiny_shapes["root"]]
    argv += ["--epochs", "200", "--out", str(run)] + [a for a in TRAIN if a != "--quiet"]
    env = {k: v for k, v in os.environ.items() if k not in ("SSD_KERAS_DEBUG", "KERAS_BACKEND")}
    env["KERAS_BACKEND"] = "tensorflow"
    process = subprocess.Popen(
        argv, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in process.stdout:  # Keras prints "Epoch 3/200" as the third epoch begins
        if line.startswith("Epoch 3/"):
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=300)
    assert process.returncode == 130, err[-2000:]
    assert "interrupted; a training run continues from its last epoch with --resume" in err
    assert "{{node" not in err and "Traceback" not in err, err
    resumed = main(["train", "--out", str(run), "--resume", "--epochs", "4"])
    assert resumed == 0
