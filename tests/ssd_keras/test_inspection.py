"""inspect / anchors commands, train --anchors/--loss/--mixed-precision, anchors.json checks
(mixed-precision models: test_precision.py)."""

from __future__ import annotations

import json

import keras
import pytest

from ssd_keras.cli import main
from ssd_keras.config import RunConfig
from ssd_keras.inspection import read_anchors


def test_inspect_writes_report_and_plots(tiny_shapes, tmp_path, capsys):
    out = tmp_path / "inspect"
    code = main(
        ["inspect", "--data", tiny_shapes["root"], "--image-size", "64", "96", "--out", str(out)]
    )
    assert code == 0
    for name in ("inspect.json", "box_shapes.png", "best_iou.png", "coverage_by_size.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = json.loads((out / "inspect.json").read_text())
    data, coverage = report["dataset"], report["coverage"]
    assert data["n_images"] == 16
    assert data["n_boxes"] == sum(row["boxes"] for row in data["per_class"].values())
    assert set(coverage["per_size"]) == {"small", "medium", "large"}
    assert sum(row["boxes"] for row in coverage["per_size"].values()) == data["n_boxes"]
    assert 0 <= coverage["fraction_matched"] <= 1
    assert report["anchors"]["n_anchors"] == sum(
        layer["feature_map"][0] * layer["feature_map"][1] * layer["boxes_per_location"]
        for layer in report["anchors"]["layers"]
    )
    printed = capsys.readouterr().out
    assert "anchor coverage at IoU 0.5" in printed and "per size" in printed


def test_anchors_train_evaluate_round_trip(tiny_shapes, tmp_path, capsys):
    """anchors -> train --anchors --loss focal --mixed-precision -> config.json holds the fitted
    anchors -> evaluate needs nothing else."""
    root = tiny_shapes["root"]
    anchors_file = tmp_path / "anchors.json"
    assert (
        main(["anchors", "--data", root, "--image-size", "64", "96", "--out", str(anchors_file)])
        == 0
    )
    fitted = json.loads(anchors_file.read_text())
    assert fitted["coverage_fitted"]["matched"] >= fitted["coverage_start"]["matched"]
    assert (tmp_path / "anchors_coverage.png").is_file()

    run = tmp_path / "run"
    code = main(
        ["train", "--data", root, "--anchors", str(anchors_file), "--epochs", "1"]
        + ["--steps-per-epoch", "2", "--batch-size", "4", "--out", str(run), "--quiet"]
        + ["--loss", "focal", "--mixed-precision"]
    )
    assert code == 0
    config = RunConfig.load(run)
    assert config.image_size == (64, 96)  # from anchors.json
    assert config.model_kwargs["scales"] == fitted["scales"]
    assert config.model_kwargs["aspect_ratios_per_layer"] == fitted["aspect_ratios_per_layer"]
    assert RunConfig.load(config.save(tmp_path / "copy")) == config
    saved_args = json.loads((run / "train_args.json").read_text())
    assert saved_args["loss"] == "focal" and saved_args["mixed_precision"] is True

    model = keras.models.load_model(run / "model.keras", compile=False)
    assert model.get_layer("conv1").compute_dtype == "bfloat16"  # no GPU here: bfloat16
    assert model.output.dtype == "float32"
    capsys.readouterr()
    code = main(["evaluate", "--run", str(run), "--data", root, "--split", "test", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 <= result["mAP_11point"] <= 1


def _write(path, record):
    path.write_text(json.dumps(record))
    return path


def test_read_anchors_names_file_field_and_value(tmp_path):
    good = {
        "model": "ssd7",
        "image_size": [64, 96],
        "scales": [0.1, 0.2, 0.3, 0.4, 0.5],
        "aspect_ratios_per_layer": [[0.5, 1.0, 2.0]] * 4,
    }
    parsed = read_anchors(_write(tmp_path / "a.json", good), model="ssd7")
    assert parsed["image_size"] == (64, 96)
    assert parsed["overrides"]["scales"] == good["scales"]
    with pytest.raises(ValueError, match=r"b\.json: field 'model' is 'ssd7'.*'ssd300'"):
        read_anchors(_write(tmp_path / "b.json", good), model="ssd300")
    bad = {**good, "scales": [0.1, -0.2, 0.3, 0.4, 0.5]}
    with pytest.raises(ValueError, match=r"c\.json: field 'scales'.*-0\.2"):
        read_anchors(_write(tmp_path / "c.json", bad))
    bad = {**good, "aspect_ratios_per_layer": [[1.0]] * 3}
    with pytest.raises(ValueError, match=r"d\.json: field 'aspect_ratios_per_layer'.*4 lists"):
        read_anchors(_write(tmp_path / "d.json", bad))
    with pytest.raises(ValueError, match=r"e\.json: missing field 'image_size'"):
        read_anchors(_write(tmp_path / "e.json", {"model": "ssd7"}))


def test_train_refuses_anchors_for_another_image_size(tiny_shapes, tmp_path, capsys):
    anchors = _write(
        tmp_path / "anchors.json",
        {
            "model": "ssd7",
            "image_size": [64, 96],
            "scales": [0.1, 0.2, 0.3, 0.4, 0.5],
            "aspect_ratios_per_layer": [[0.5, 1.0, 2.0]] * 4,
        },
    )
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["train", "--data", tiny_shapes["root"], "--anchors", str(anchors)]
            + ["--image-size", "96", "128", "--out", str(tmp_path / "run")]
        )
    assert exit_info.value.code == 2
    assert "fitted for image size [64, 96], --image-size is [96, 128]" in capsys.readouterr().err
