"""bench/quantization_accuracy.py in its small mode (what CI runs): every step of the benchmark
(training on BCCD, exports, mAP, agreement, interleaved latency) on a few images."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import keras
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "quantization_accuracy.py"


@pytest.mark.slow  # trains 3 steps on BCCD and exports three times (~1-2 min on 2 cores)
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="export needs TensorFlow")
def test_quantization_accuracy_small_mode(shared_data_dir, tmp_path, capsys):
    bccd = shared_data_dir / "bccd" / "BCCD"
    if not (bccd / "ImageSets" / "Main" / "test.txt").is_file():
        pytest.skip(f"BCCD is not available at {bccd}")
    spec = importlib.util.spec_from_file_location("quantization_accuracy", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    report = bench.main(["--small", "--data", str(bccd), "--out", str(tmp_path)])
    assert json.loads((tmp_path / "quantization_accuracy.json").read_text()) == report
    assert json.dumps(report, indent=2) in capsys.readouterr().out  # printed last
    assert report["test_images"] == 8 and report["small"]
    rows = {f"{r['runtime']}/{r['precision']}": r for r in report["results"]}
    expected = {"keras/fp32", "keras/folded", "keras/bf16"}
    for key, module in (("litert/int8", "ai_edge_litert"), ("onnxruntime/fp32", "onnxruntime"),
                        ("openvino/int8", "nncf")):  # fmt: skip
        if importlib.util.find_spec(module) is not None:
            expected.add(key)
    assert set(rows) == expected
    keras_row = rows["keras/fp32"]
    assert keras_row["delta_points_11point"] == 0 and keras_row["unmatched_detections"] == 0
    for key, row in rows.items():
        assert "error" not in row, (key, row.get("error"))
        assert 0 <= row["mAP_11point"] <= 1 and 0 <= row["mAP_all_point"] <= 1
        for batch in ("batch1", "batch8"):
            latency = row["latency"][batch]
            assert 0 < latency["min_ms"] <= latency["median_ms"] <= latency["max_ms"]
    # the folded model is the same float32 model: the same detections and mAP
    assert rows["keras/folded"]["unmatched_detections"] == 0
    assert abs(rows["keras/folded"]["delta_points_11point"]) < 1e-6
    if "onnxruntime/fp32" in rows:  # float32 in another runtime: the same detections
        assert rows["onnxruntime/fp32"]["unmatched_detections"] == 0
        assert abs(rows["onnxruntime/fp32"]["delta_points_11point"]) < 1e-6
