"""The app's pruning/export/video pieces: train --variances and resume from train_args.json,
prune (filters, magnitude) into new runs, export to TFLite/ONNX and predict with the exports on
a video and a (simulated) camera, with FPS."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from ssd_keras.cli import main
from ssd_keras.config import RunConfig

VARIANCES = [0.1, 0.1, 0.2, 0.2]


def _error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def _frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


@pytest.fixture(scope="module")
def trained_run(tiny_shapes, tmp_path_factory):
    """A 1-epoch, 2-step SSD7 run with SSD300's variances (the shared starting point)."""
    run = tmp_path_factory.mktemp("optimize") / "run"
    code = main(
        ["train", "--data", tiny_shapes["root"], "--image-size", "64", "96", "--epochs", "1"]
        + ["--steps-per-epoch", "2", "--batch-size", "4", "--seed", "5", "--out", str(run)]
        + ["--variances", *map(str, VARIANCES), "--quiet"]
    )
    assert code == 0
    return run


@pytest.fixture(scope="module")
def clip(tiny_shapes, tmp_path_factory) -> Path:
    """A 12-frame 64x96 MJPG video of the dataset's images."""
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    images = sorted(Path(tiny_shapes["images_dir"]).glob("*.jpg"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 64))
    assert writer.isOpened()
    for k in range(12):
        writer.write(cv2.imread(str(images[k % len(images)])))
    writer.release()
    return path


def test_variances_reach_model_encoder_and_train_args(trained_run):
    config = RunConfig.load(trained_run)
    assert config.model_kwargs["variances"] == VARIANCES
    saved = json.loads((trained_run / "train_args.json").read_text())
    assert saved["variances"] == VARIANCES
    # The recipe's values are written out as trained (SSD7: Adam 1e-3, plateau, constant).
    assert (saved["optimizer"], saved["lr"], saved["lr_schedule"]) == ("adam", 0.001, "plateau")
    assert (saved["batch_size"], saved["steps_per_epoch"], saved["seed"]) == (4, 2, 5)
    assert saved["data"] == str(Path(saved["data"]).resolve())
    # The model's anchor columns carry the variances (last 4 of every anchor row) ...
    model = keras.models.load_model(trained_run / "model.keras", compile=False)
    y = keras.ops.convert_to_numpy(model(np.zeros((1, 64, 96, 3), "float32")))
    np.testing.assert_allclose(y[0, :, -4:], np.tile(VARIANCES, (y.shape[1], 1)), rtol=1e-6)
    # ... and so does the encoder's template (ground truth encoded with the same ones).
    template = config.build_encoder(config.predictor_sizes()).generate_encoding_template(1)
    np.testing.assert_allclose(template[0, :, -4:], y[0, :, -4:], rtol=1e-6)


def test_resume_with_only_out_and_epochs(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    capsys.readouterr()
    # No dataset or training options: all come from train_args.json.
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]) == 0
    assert "trained epochs 2..2 of 2" in capsys.readouterr().out
    rows = (run / "training_log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    assert json.loads((run / "train_args.json").read_text())["epochs"] == 2
    # A conflicting argument is refused, naming both values; an equal one is accepted silently.
    err = _error(
        ["train", "--out", str(run), "--resume", "--epochs", "3", "--batch-size", "8"], capsys
    )
    assert "--batch-size 8 (the run used 4)" in err and "train_args.json" in err
    err = _error(
        ["train", "--out", str(run), "--resume", "--variances", "1", "1", "1", "1"], capsys
    )
    assert "--variances 1.0 1.0 1.0 1.0 (the run used 0.1 0.1 0.2 0.2)" in err
    # A run saved without train_args.json (older versions) needs its dataset options again.
    (run / "train_args.json").unlink()
    err = _error(["train", "--out", str(run), "--resume", "--epochs", "3"], capsys)
    assert "no train_args.json" in err and "--data DIR" in err


def test_prune_filters_fine_tune_and_resume(trained_run, tmp_path, capsys):
    out = tmp_path / "filters"
    capsys.readouterr()
    # The fine-tuning data comes from the source run's train_args.json.
    code = main(
        ["prune", "--run", str(trained_run), "--method", "filters", "--amount", "0.5"]
        + ["--fine-tune-epochs", "1", "--steps-per-epoch", "2", "--out", str(out), "--quiet"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "conv1" in printed and "32 -> 16" in printed and "fine-tuned 1 epoch(s)" in printed
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["method"] == "filters" and report["criterion"] == "contribution"
    rows = {r["layer"]: r for r in report["layers"]}
    # conv1..conv7 lose half their filters; the heads keep theirs (their Reshape fixes them).
    assert rows["conv4"]["filters_before"] == 64 and rows["conv4"]["filters_after"] == 32
    assert rows["classes4"]["filters_after"] == rows["classes4"]["filters_before"]
    # SSD7's conv1..conv7 have 32+48+64+64+48+48+32 = 336 filters, halved; the 8 heads keep
    # their 4*24 + 4*16 = 160, so 168 of 496 filters go overall.
    assert report["sparsity"] == 0.5
    assert report["filters_removed_overall"] == pytest.approx(168 / 496)

    config = RunConfig.load(out)
    assert config.pruning["method"] == "filters" and config.pruning["amount"] == 0.5
    assert config.model_kwargs["variances"] == VARIANCES  # anchors unchanged
    with pytest.raises(ValueError, match="filter-pruned"):
        config.build_model()
    from ssd_keras.predict import load_run

    model, _ = load_run(out)
    assert model.get_layer("conv1").kernel.shape[-1] == 16
    assert model.count_params() == report["params_after"] < report["params_before"]

    # The pruned run resumes like any run: its architecture comes from initial_model.keras.
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--quiet"]) == 0
    assert "trained epochs 2..2 of 2" in capsys.readouterr().out
    resumed = keras.models.load_model(out / "model.keras", compile=False)
    assert resumed.get_layer("conv1").kernel.shape[-1] == 16


def test_prune_magnitude_one_shot_and_fine_tuned(trained_run, tmp_path, capsys):
    from model_optimization import sparsity_report

    one_shot = tmp_path / "one_shot"
    assert (
        main(
            ["prune", "--run", str(trained_run), "--method", "magnitude"]
            + ["--sparsity", "0.5", "--out", str(one_shot)]
        )
        == 0
    )
    report = json.loads((one_shot / "pruning_report.json").read_text())
    assert report["params_after"] == report["params_before"]
    for row in report["layers"]:  # every Conv2D kernel, exactly round(n / 2) zeros
        assert row["zeros"] == round(row["size"] * 0.5), row["layer"]

    tuned = tmp_path / "tuned"
    code = main(
        ["prune", "--run", str(trained_run), "--method", "magnitude", "--sparsity", "0.7"]
        + ["--fine-tune-epochs", "2", "--steps-per-epoch", "3", "--out", str(tuned), "--quiet"]
    )
    assert code == 0
    report = json.loads((tuned / "pruning_report.json").read_text())
    assert report["schedule"]["class"] == "PolynomialDecay"
    assert report["sparsity"] == pytest.approx(0.7, abs=0.01)
    for name in ("model.keras", "model_best.keras"):
        if not (tuned / name).exists():
            assert name == "model_best.keras" and "removed_model_best" in report
            continue
        # Saved stripped (plain layers) and still sparse after the fine-tuning steps.
        model = keras.models.load_model(tuned / name, compile=False)
        assert not any("prune_low_magnitude" in layer.name for layer in model.layers)
        rows = sparsity_report(model)
        assert sum(r["zeros"] for r in rows) / sum(r["size"] for r in rows) >= 0.69

    # Resumed, the schedule continues from its saved step (past its end: the masks stay); a
    # resume that restarted the schedule at step 0 would first re-open every mask (sparsity 0)
    # and end below 0.7.
    capsys.readouterr()
    assert main(["train", "--out", str(tuned), "--resume", "--epochs", "3", "--quiet"]) == 0
    assert "trained epochs 3..3 of 3" in capsys.readouterr().out
    rows = sparsity_report(keras.models.load_model(tuned / "model.keras", compile=False))
    assert sum(r["zeros"] for r in rows) / sum(r["size"] for r in rows) >= 0.699

    err = _error(
        ["prune", "--run", str(trained_run), "--method", "magnitude"]
        + ["--sparsity", "1.5", "--out", str(tmp_path / "x")],
        capsys,
    )
    assert "--sparsity" in err and "(0, 1)" in err
    err = _error(
        ["prune", "--run", str(trained_run), "--method", "filters"]
        + ["--amount", "0.5", "--out", str(tuned)],
        capsys,
    )
    assert "not empty" in err and "--overwrite" in err


def test_export_then_predict_video_camera_and_evaluate(
    trained_run, tiny_shapes, clip, tmp_path, capsys, monkeypatch
):
    from model_optimization import load_runner

    exports = tmp_path / "exports"
    for fmt in ("tflite", "onnx"):
        assert (
            main(
                ["export", "--run", str(trained_run), "--format", fmt]
                + ["--out", str(exports / f"ssd7.{fmt}")]
            )
            == 0
        )
    printed = capsys.readouterr().out
    assert printed.count("run configuration") == 2
    assert RunConfig.load(exports / "config.json") == RunConfig.load(trained_run)
    model = keras.models.load_model(trained_run / "model.keras", compile=False)
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 96, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(images))
    for fmt in ("tflite", "onnx"):
        got = load_runner(exports / f"ssd7.{fmt}")(images)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)

    # Video through every kind of model: annotated frames, FPS printed (both kinds).
    for source in (trained_run, exports / "ssd7.tflite", exports / "ssd7.onnx"):
        out = tmp_path / f"video_{source.name}"
        assert (
            main(
                ["predict", "--run", str(source), "--video", str(clip)]
                + ["--max-frames", "5", "--out", str(out), "--confidence", "0.05"]
            )
            == 0
        )
        printed = capsys.readouterr().out
        assert "5 frames" in printed and "FPS end to end" in printed
        assert "FPS model only" in printed
        frames = _frames(out / "clip_pred.avi")
        assert len(frames) == 5 and frames[0].shape == (64, 96, 3)

    # The FPS box is drawn in the top-left corner: black where the input frame is not.
    original = _frames(clip)[0]
    assert original[2:6, 2:30].mean() > 60
    assert frames[0][1:4, 1:4].mean() < 40

    # --camera N: the same capture code; here camera 0 is the clip.
    real_capture = cv2.VideoCapture

    def fake_capture(source):
        return real_capture(str(clip)) if source == 0 else real_capture(source)

    monkeypatch.setattr(cv2, "VideoCapture", fake_capture)
    out = tmp_path / "camera"
    assert (
        main(
            ["predict", "--run", str(exports / "ssd7.onnx"), "--camera", "0"]
            + ["--max-frames", "11", "--out", str(out)]
        )
        == 0
    )
    assert "camera 0: 11 frames" in capsys.readouterr().out
    # 10 frames are timed before the writer opens (at the measured rate), the 11th follows.
    assert len(_frames(out / "camera0_pred.mp4")) == 11
    # Stopped before 10 frames, the timed frames are still written.
    assert (
        main(
            ["predict", "--run", str(exports / "ssd7.onnx"), "--camera", "0"]
            + ["--max-frames", "3", "--out", str(tmp_path / "camera3")]
        )
        == 0
    )
    assert len(_frames(tmp_path / "camera3" / "camera0_pred.mp4")) == 3
    monkeypatch.undo()
    err = _error(["predict", "--run", str(trained_run), "--camera", "97"], capsys)
    assert "camera 97: OpenCV cannot open it" in err

    # Images and folders with an exported model; evaluation of the TFLite file.
    out = tmp_path / "images"
    assert (
        main(
            ["predict", "--run", str(exports / "ssd7.tflite"), tiny_shapes["images_dir"]]
            + ["--out", str(out)]
        )
        == 0
    )
    assert len(list(out.glob("*_pred.jpg"))) == 22
    capsys.readouterr()
    assert (
        main(
            ["evaluate", "--run", str(exports / "ssd7.tflite"), "--data"]
            + [tiny_shapes["root"], "--split", "test", "--json"]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["n_images"] == 6

    # Without a config.json beside it, an exported model needs --config.
    lonely = tmp_path / "lonely" / "ssd7.onnx"
    lonely.parent.mkdir()
    shutil.copy(exports / "ssd7.onnx", lonely)
    err = _error(["predict", "--run", str(lonely), "--video", str(clip)], capsys)
    assert "needs its run configuration" in err and "--config" in err
    assert (
        main(
            ["predict", "--run", str(lonely), "--config", str(trained_run)]
            + ["--video", str(clip), "--max-frames", "2", "--out", str(tmp_path / "lonely_out")]
        )
        == 0
    )


def test_export_int8_calibrates_on_the_runs_training_data(trained_run, tmp_path, capsys):
    from model_optimization import load_runner

    out = tmp_path / "int8" / "ssd7_int8.tflite"
    # No dataset given: the calibration images come from the run's train_args.json.
    code = main(
        ["export", "--run", str(trained_run), "--format", "tflite", "--quantization", "int8"]
        + ["--num-calibration", "8", "--out", str(out)]
    )
    assert code == 0
    assert "(int8)" in capsys.readouterr().out
    runner = load_runner(out)
    y = runner(np.zeros((2, 64, 96, 3), "float32"))
    model = keras.models.load_model(trained_run / "model.keras", compile=False)
    assert y.shape[1:] == tuple(model.outputs[0].shape[1:])
    # Anchors and variances are carried exactly (kept out of the int8 graph).
    expected = keras.ops.convert_to_numpy(model(np.zeros((1, 64, 96, 3), "float32")))
    np.testing.assert_array_equal(y[0, :, -8:], expected[0, :, -8:])


def test_export_and_distribute_argument_errors(trained_run, tmp_path, tiny_shapes, capsys):
    err = _error(
        ["export", "--run", str(trained_run), "--format", "onnx"]
        + ["--quantization", "int8", "--out", str(tmp_path / "m.onnx")],
        capsys,
    )
    assert "--quantization int8 needs --format tflite" in err
    err = _error(
        ["export", "--run", str(trained_run), "--format", "tflite"]
        + ["--out", str(tmp_path / "m.onnx")],
        capsys,
    )
    assert "a tflite export is a .tflite file" in err
    err = _error(["predict", "--run", str(trained_run)], capsys)
    assert "nothing to predict on" in err
    # --overwrite only ever deletes a run folder.
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep me")
    err = _error(
        ["prune", "--run", str(trained_run), "--method", "filters", "--amount", "0.5"]
        + ["--out", str(precious), "--overwrite"],
        capsys,
    )
    assert "not a run folder" in err and (precious / "thesis.txt").is_file()
    err = _error(
        ["predict", "--run", str(trained_run), "--video", str(tmp_path / "no.mp4")], capsys
    )
    assert "--video: file not found" in err
    # data-parallel is the JAX distribution; the tests run TensorFlow.
    assert keras.backend.backend() == "tensorflow"
    err = _error(
        ["train", "--data", tiny_shapes["root"], "--out", str(tmp_path / "dp")]
        + ["--distribute", "data-parallel"],
        capsys,
    )
    assert "needs the JAX backend" in err
    err = _error(
        ["train", "--data", tiny_shapes["root"], "--out", str(tmp_path / "dp")]
        + ["--variances", "0.1", "0", "0.2", "0.2"],
        capsys,
    )
    assert "--variances" in err and "positive number" in err


def test_run_config_pruning_field_round_trip(tmp_path):
    config = RunConfig.create("ssd7", ["background", "a"], image_size=(64, 96))
    config.save(tmp_path)
    assert "pruning" not in json.loads((tmp_path / "config.json").read_text())
    assert RunConfig.load(tmp_path) == config  # configs written before the field still load
    pruned = RunConfig(**{**config.__dict__, "pruning": {"method": "magnitude", "amount": 0.5}})
    pruned.save(tmp_path)
    assert RunConfig.load(tmp_path).pruning == {"method": "magnitude", "amount": 0.5}
    assert pruned.architecture_from_builder  # magnitude pruning keeps the architecture
    with pytest.raises(ValueError, match="variances must be 4 positive numbers"):
        RunConfig.create("ssd7", ["background", "a"], variances=[0.1, 0.1, 0.2])


def test_train_refuses_a_model_of_another_configuration(tiny_shapes, tmp_path):
    from ssd_keras.data import load_voc
    from ssd_keras.train import train

    config = RunConfig.create("ssd7", tiny_shapes["classes"], image_size=(64, 96))
    other = RunConfig.create("ssd7", ["background", "a"], image_size=(64, 96)).build_model()
    dataset = load_voc(tiny_shapes["root"], "train", config.classes)
    with pytest.raises(ValueError, match=r"outputs shape .* the run configuration encodes"):
        train(config, dataset, tmp_path / "run", epochs=1, model=other, verbose=0)
