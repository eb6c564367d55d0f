"""CLI smoke tests: train 2 steps, evaluate, predict on an image and a 10-frame video; errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ssd_keras.cli import main

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _write_video(path: Path, images: list[Path], n_frames: int = 10) -> None:
    first = cv2.imread(str(images[0]))
    height, width = first.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (width, height))
    assert writer.isOpened()
    for k in range(n_frames):
        frame = cv2.imread(str(images[k % len(images)]))
        writer.write(cv2.resize(frame, (width, height)))
    writer.release()


def _count_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_train_evaluate_predict(tiny_shapes, tmp_path, capsys):
    root = tiny_shapes["root"]
    run = tmp_path / "run"
    code = main(
        ["train", "--data", root, "--image-size", "64", "96", "--epochs", "1"]
        + ["--steps-per-epoch", "2", "--batch-size", "4", "--out", str(run), "--quiet"]
    )
    assert code == 0
    for name in ("config.json", "model.keras", "training_log.csv", "loss.png"):
        assert (run / name).is_file(), name
    assert (run / "backup" / "latest.weights.h5").is_file()
    log = (run / "training_log.csv").read_text().splitlines()
    assert len(log) == 2  # header + one epoch
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "ssd7" and config["image_size"] == [64, 96]
    assert config["classes"][0] == "background" and len(config["classes"]) == 6
    capsys.readouterr()

    # --resume continues the same run folder: epoch 2 only, the log grows by one row.
    code = main(
        ["train", "--data", root, "--epochs", "2", "--steps-per-epoch", "2"]
        + ["--batch-size", "4", "--out", str(run), "--quiet", "--resume"]
    )
    assert code == 0
    assert "trained epochs 2..2 of 2" in capsys.readouterr().out
    assert len((run / "training_log.csv").read_text().splitlines()) == 3

    evaluation = tmp_path / "evaluation"
    code = main(
        ["evaluate", "--run", str(run), "--data", root, "--split", "test"]
        + ["--out", str(evaluation), "--json", "--batch-size", "3"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["per_class"]) == set(config["classes"][1:])
    for key in ("mAP_11point", "mAP_all_point"):
        assert 0.0 <= result[key] <= 1.0
    assert result["n_images"] == 6
    assert json.loads((evaluation / "metrics.json").read_text()) == result
    assert (evaluation / "average_precisions.png").is_file()
    assert len(list((evaluation / "pr_curves").glob("*.png"))) == 5

    test_ids = Path(tiny_shapes["image_sets"]["test"]).read_text().split()
    images = [Path(tiny_shapes["images_dir"]) / f"{i}.jpg" for i in test_ids]
    video = tmp_path / "clip.avi"
    _write_video(video, images, n_frames=10)
    out = tmp_path / "predictions"
    code = main(
        ["predict", "--run", str(run), str(images[0]), str(video), "--out", str(out)]
        + ["--confidence", "0.05"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "FPS" in printed and "10 frames" in printed
    picture = cv2.imread(str(out / f"{images[0].stem}_pred.jpg"))
    assert picture.shape == cv2.imread(str(images[0])).shape
    detections = json.loads((out / "detections.json").read_text())
    rows = detections[str(images[0])]
    for row in rows:  # boxes are in the original image's pixels
        assert row["confidence"] > 0.05 and row["class"] in config["classes"][1:]
        assert 0 <= row["box"][0] <= row["box"][2] <= 96 and 0 <= row["box"][1] <= 64
    assert _count_frames(out / "clip_pred.avi") == 10

    # A folder works as input too.
    code = main(
        ["predict", "--run", str(run / "model.keras"), tiny_shapes["images_dir"]]
        + ["--out", str(tmp_path / "folder")]
    )
    assert code == 0
    assert len(list((tmp_path / "folder").glob("*_pred.jpg"))) == 22


def _error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_bad_arguments_name_the_problem(tiny_shapes, tmp_path, capsys):
    root = tiny_shapes["root"]
    missing = str(tmp_path / "nowhere")
    err = _error(["train", "--data", missing, "--out", str(tmp_path / "r")], capsys)
    assert "folder not found" in err and "nowhere" in err
    err = _error(["train", "--data", root, "--split", "nosuch", "--out", str(tmp_path)], capsys)
    assert "nosuch.txt" in err
    err = _error(["train", "--data", root, "--epochs", "0", "--out", str(tmp_path)], capsys)
    assert "--epochs" in err and "positive integer" in err
    err = _error(["train", "--out", str(tmp_path)], capsys)
    assert "exactly one dataset" in err
    err = _error(["train", "--data", root, "--out", str(tmp_path / "r"), "--resume"], capsys)
    assert "nothing to resume" in err
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "config.json").write_text("{}")
    (tmp_path / "used" / "model.keras").write_text("")  # a run that trained (a bare config.json
    # is what a run that stopped before its first epoch ends leaves: see test_bad_input)
    err = _error(["train", "--data", root, "--out", str(tmp_path / "used")], capsys)
    assert "already holds a training run" in err and "--resume" in err
    err = _error(["train", "--csv", missing, "--images", root, "--out", str(tmp_path)], capsys)
    assert "file not found" in err
    err = _error(["predict", "--run", missing, "x.jpg"], capsys)
    assert "--run: not found" in err
    err = _error(["evaluate", "--run", root, "--data", root, "--split", "test"], capsys)
    assert "no model_best.keras or model.keras" in err
    (tmp_path / "notes.txt").write_text("hello")
    err = _error(["predict", "--run", root, str(tmp_path / "notes.txt")], capsys)
    assert "unsupported file type '.txt'" in err
    err = _error(["predict", "--run", root, missing + ".jpg"], capsys)
    assert "input not found" in err
    err = _error(["predict", "--run", root, "--confidence", "1.5", "a.jpg"], capsys)
    assert "--confidence" in err


def test_module_entry_point_runs():
    # `python -m ssd_keras` exists and fails cleanly, without a traceback, on a bad path.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssd_keras",
            "evaluate",
            "--run",
            "/nonexistent/run",
            "--data",
            "/nonexistent/data",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert done.returncode == 2
    assert "folder not found: /nonexistent/data" in done.stderr
    assert "Traceback" not in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "ssd_keras", "--help"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert done.returncode == 0
    for command in ("train", "evaluate", "predict", "prune", "export", "demo"):
        assert command in done.stdout


def test_unreadable_video_is_reported(tiny_shapes, tmp_path):
    from ssd_keras.predict import predict_video

    class _Predictor:
        config = None

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(np.arange(256, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="broken.mp4"):
        predict_video(_Predictor(), bad, tmp_path / "out.mp4", verbose=False)
