"""`--runtime` choice (ssd_keras.runtime.resolve_runtime), the detection agreement criterion,
and ``export --format best`` end to end on a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from ssd_keras.cli import main
from ssd_keras.runtime import (
    CHOICE_FILE,
    allowed_unmatched,
    box_iou,
    detections_agree,
    file_sha256,
    resolve_runtime,
)


def _det(class_id, conf, xmin, ymin, xmax, ymax):
    return [class_id, conf, xmin, ymin, xmax, ymax]


def test_box_iou_hand_values():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    # identical: 1; half overlap: 50 / (100 + 100 - 50) = 1/3; apart: 0
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 1 / 3, 0.0]])


def test_detections_agree_criterion():
    ref = np.array([_det(1, 0.9, 0, 0, 100, 100), _det(2, 0.3, 0, 0, 50, 50)])
    # shifted by 10 px: IoU 90*100 / (2*10000 - 9000) = 0.818 >= 0.7 -> agrees
    assert detections_agree(ref, np.array([_det(1, 0.8, 10, 0, 110, 100)])) == 0
    # shifted by 20 px: IoU 8000 / 12000 = 0.667 < 0.7 -> both confident boxes unmatched
    assert detections_agree(ref, np.array([_det(1, 0.8, 20, 0, 120, 100)])) == 2
    # same box, other class: unmatched both ways
    assert detections_agree(ref, np.array([_det(3, 0.9, 0, 0, 100, 100)])) == 2
    # missing entirely: the one confident reference box is unmatched
    assert detections_agree(ref, np.zeros((0, 6))) == 1
    # a partner just under the threshold (within the margin) still agrees; far under does not
    assert detections_agree(ref, np.array([_det(1, 0.47, 0, 0, 100, 100)])) == 0
    assert detections_agree(ref, np.array([_det(1, 0.3, 0, 0, 100, 100)])) == 1
    # an extra confident detection in the candidate is a disagreement too
    extra = np.array([_det(1, 0.9, 0, 0, 100, 100), _det(2, 0.7, 200, 200, 260, 260)])
    assert detections_agree(ref, extra) == 1
    # a zero-area box (clipped at the image edge) agrees with itself, not with another
    flat = np.array([_det(1, 0.9, 2.2, 64, 26.9, 64)])
    assert detections_agree(flat, flat + [0, 0, 0.1, 0, 0, 0]) == 0
    assert detections_agree(flat, flat + [0, 0, 5, 0, 5, 0]) == 2
    # below-threshold boxes on both sides are ignored
    assert detections_agree(ref[1:], np.zeros((0, 6))) == 0


def _fake_run(tmp_path: Path, record: dict | None, files=("exports/model_int8.xml",)) -> Path:
    run = tmp_path / "run"
    (run / "exports").mkdir(parents=True)
    (run / "model.keras").write_bytes(b"weights v1")
    for name in files:
        (run / name).write_text("exported")
    if record is not None:
        record = {
            "model_file": "model.keras",
            "model_sha256": file_sha256(run / "model.keras"),
        } | record
        (run / CHOICE_FILE).write_text(json.dumps(record))
    return run


RECORD = {
    "chosen": {"runtime": "openvino", "precision": "int8", "path": "exports/model_int8.xml"},
    "candidates": [
        {"runtime": "openvino", "precision": "int8", "path": "exports/model_int8.xml",
         "agree": True, "median_ms": 2.0},
        {"runtime": "openvino", "precision": "fp32", "path": "exports/model_fp32.xml",
         "agree": True, "median_ms": 5.0},
        {"runtime": "litert", "precision": "int8", "path": "exports/model_int8.tflite",
         "agree": False, "median_ms": 1.0},
        {"runtime": "litert", "precision": "fp32", "path": "exports/model_fp32.tflite",
         "agree": True, "median_ms": 6.0},
    ],
}  # fmt: skip


def test_resolve_runtime_choices(tmp_path):
    files = ("exports/model_int8.xml", "exports/model_fp32.xml", "exports/model_int8.tflite",
             "exports/model_fp32.tflite")  # fmt: skip
    run = _fake_run(tmp_path, RECORD, files)
    exports = run / "exports"
    # auto: the recorded choice; keras: the run itself
    assert resolve_runtime(run, "auto") == exports / "model_int8.xml"
    assert resolve_runtime(run / "model.keras", "auto") == exports / "model_int8.xml"
    assert resolve_runtime(run, "keras") == run
    # a named runtime: its fastest *verified* export (the faster litert int8 disagreed)
    assert resolve_runtime(run, "openvino") == exports / "model_int8.xml"
    assert resolve_runtime(run, "litert") == exports / "model_fp32.tflite"
    with pytest.raises(ValueError, match="no verified onnxruntime export"):
        resolve_runtime(run, "onnxruntime")
    with pytest.raises(ValueError, match="--runtime must be one of"):
        resolve_runtime(run, "tensorrt")
    # an exported file runs in its own runtime
    assert resolve_runtime(exports / "model_fp32.tflite", "auto") == exports / "model_fp32.tflite"
    assert resolve_runtime(exports / "model_fp32.tflite", "litert") == exports / "model_fp32.tflite"
    with pytest.raises(ValueError, match="is a litert model"):
        resolve_runtime(exports / "model_fp32.tflite", "openvino")
    # a deleted export is not used
    (exports / "model_int8.xml").unlink()
    assert resolve_runtime(run, "auto") == run
    assert resolve_runtime(run, "openvino") == exports / "model_fp32.xml"


def test_resolve_runtime_ignores_a_stale_or_missing_record(tmp_path):
    run = _fake_run(tmp_path, RECORD)
    assert resolve_runtime(run, "auto") == run / "exports" / "model_int8.xml"
    (run / "model.keras").write_bytes(b"weights v2")  # retrained: the exports are of v1
    assert resolve_runtime(run, "auto") == run
    with pytest.raises(ValueError, match="no verified openvino export"):
        resolve_runtime(run, "openvino")
    no_choice = _fake_run(tmp_path / "other", RECORD | {"chosen": None})
    assert resolve_runtime(no_choice, "auto") == no_choice  # Keras was the fastest
    none = _fake_run(tmp_path / "none", None)
    assert resolve_runtime(none, "auto") == none
    (none / CHOICE_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        resolve_runtime(none, "auto")


def test_export_cli_argument_errors(tmp_path, capsys):
    run = _fake_run(tmp_path, None)

    def error(argv):
        with pytest.raises(SystemExit) as exit_info:
            main(["export", "--run", str(run), *argv])
        assert exit_info.value.code == 2
        return capsys.readouterr().err

    assert "needs --format openvino" in error(["--format", "tflite", "--quantization", "bf16",
                                                "--out", str(tmp_path / "m.tflite")])  # fmt: skip
    assert "needs --format tflite" in error(["--format", "openvino", "--quantization", "float16",
                                              "--out", str(tmp_path / "m.xml")])  # fmt: skip
    assert "a openvino export is a .xml file" in error(
        ["--format", "openvino", "--out", str(tmp_path / "m.onnx")]
    )
    assert "--out is required" in error(["--format", "openvino"])
    assert "drop --quantization" in error(["--format", "best", "--quantization", "int8"])
    assert "--max-unmatched: expected a number in [0, 1), got '1.5'" in error(
        ["--format", "best", "--max-unmatched", "1.5"]
    )


def test_allowed_unmatched_is_a_fraction_of_the_confident_detections():
    assert allowed_unmatched(886, 0.0) == 0  # the default: every detection matched
    assert allowed_unmatched(886, 0.01) == 8  # 8.86 rounded down
    assert allowed_unmatched(100, 0.01) == 1  # exactly one in a hundred
    assert allowed_unmatched(99, 0.01) == 0
    assert allowed_unmatched(0, 0.5) == 0
    with pytest.raises(ValueError, match="max_unmatched must be in"):
        allowed_unmatched(10, 1.0)
    with pytest.raises(ValueError, match="max_unmatched must be in"):
        allowed_unmatched(10, -0.1)


@pytest.mark.slow  # trains a tiny run and exports it twice (about 50 s on 2 busy cores)
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="export needs TensorFlow")
def test_export_best_records_the_fastest_agreeing_runtime(tiny_shapes, tmp_path, capsys):
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    run = tmp_path / "run"
    train = ["train", "--data", tiny_shapes["root"], "--image-size", "64", "96", "--epochs", "1"]
    train += ["--steps-per-epoch", "2", "--batch-size", "4", "--seed", "5", "--out", str(run)]
    assert main(train + ["--quiet"]) == 0
    capsys.readouterr()
    from ssd_keras.runtime import export_best

    # Two candidates keep the test short; the CLI tries every installed one.
    record = export_best(run, candidates=[("openvino", "fp32"), ("openvino", "bf16")], n_check=4)
    assert json.loads((run / CHOICE_FILE).read_text()) == record
    assert record["model_sha256"] == file_sha256(run / "model_best.keras") or record[
        "model_sha256"
    ] == file_sha256(run / "model.keras")
    assert record["criterion"]["max_unmatched"] == 0
    assert record["criterion"]["allowed_unmatched"] == 0
    rows = {row["precision"]: row for row in record["candidates"]}
    assert set(rows) == {"fp32", "bf16"}
    assert rows["fp32"]["agree"] and rows["fp32"]["unmatched"] == 0  # float32 = Keras
    assert all(row["median_ms"] > 0 for row in rows.values())
    agreeing = [row for row in rows.values() if row["agree"]]
    fastest = min(agreeing, key=lambda r: r["median_ms"])
    if fastest["median_ms"] < record["keras_median_ms"]:
        assert record["chosen"]["path"] == fastest["path"]
        assert resolve_runtime(run, "auto") == run / fastest["path"]
    else:
        assert record["chosen"] is None and resolve_runtime(run, "auto") == run
    assert resolve_runtime(run, "openvino") == run / fastest["path"]

    # predict/evaluate take --runtime and run the recorded export
    out = tmp_path / "pred"
    images = tiny_shapes["images_dir"]
    assert (
        main(["predict", "--run", str(run), "--runtime", "openvino", images, "--out", str(out)])
        == 0
    )
    assert len(list(out.glob("*.jpg"))) > 0
    code = main(["evaluate", "--run", str(run), "--runtime", "openvino", "--data",
                 tiny_shapes["root"], "--json"])  # fmt: skip
    assert code == 0
    assert "mAP" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["predict", "--run", str(run), "--runtime", "onnxruntime", images])
    assert "no verified onnxruntime export" in capsys.readouterr().err
