"""SSDLite through the app: the run configuration, --backbone-weights, and (slow) train, evaluate,
predict, filter pruning and TFLite int8 / ONNX export of an SSDLite run."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from ssd_keras.cli import main
from ssd_keras.config import RunConfig
from ssd_keras.train import recipe

CLASSES = ["background", "a", "b"]


@pytest.fixture(scope="module")
def mobilenet_v2_file(tmp_path_factory) -> Path:
    """A MobileNetV2 (alpha 1, no top) weights file from keras.applications, random weights."""
    keras.utils.set_random_seed(0)
    net = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), include_top=False, weights=None, alpha=1.0
    )
    path = tmp_path_factory.mktemp("backbone") / "mobilenet_v2.weights.h5"
    net.save_weights(path)
    return path


def test_run_config_of_ssdlite():
    config = RunConfig.create("ssdlite", CLASSES)
    assert config.image_size == (320, 320)
    assert config.model_kwargs["backbone"] == "mobilenet_v2"
    assert config.model_kwargs["subtract_mean"] == 127.5
    assert config.encoder_kwargs["neg_iou_limit"] == 0.5
    assert recipe("ssdlite") == {
        "optimizer": "adam",
        "learning_rate": 0.001,
        "lr_schedule": "plateau",
        "augmentation": "constant",
    }
    small = RunConfig.create("ssdlite", CLASSES, image_size=(64, 96))
    model, sizes = small.build_model(return_predictor_sizes=True)
    encoder = small.build_encoder(sizes)
    assert encoder.generate_encoding_template(1).shape[1:] == tuple(model.output.shape[1:])


def test_build_model_loads_backbone_weights(mobilenet_v2_file):
    net = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), include_top=False, weights=None, alpha=1.0
    )
    net.load_weights(mobilenet_v2_file)
    config = RunConfig.create("ssdlite", CLASSES, image_size=(64, 96))
    model = config.build_model(backbone_weights=mobilenet_v2_file)
    for name in ("Conv1", "block_13_expand", "block_13_expand_BN", "Conv_1"):
        for got, want in zip(
            model.get_layer(name).get_weights(), net.get_layer(name).get_weights()
        ):
            np.testing.assert_array_equal(got, want, err_msg=name)
    with pytest.raises(ValueError, match="SSD7 has no pretrained backbone"):
        RunConfig.create("ssd7", CLASSES).build_model(backbone_weights=mobilenet_v2_file)


def test_backbone_weights_argument_errors(tiny_shapes, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["train", "--model", "ssdlite", "--data", tiny_shapes["root"], "--out", str(tmp_path)]
            + ["--backbone-weights", str(tmp_path / "missing.h5")]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--backbone-weights" in err and "missing.h5" in err


@pytest.mark.slow
def test_train_evaluate_predict_prune_export_ssdlite(
    tiny_shapes, mobilenet_v2_file, tmp_path, capsys
):
    from model_optimization import load_runner

    run = tmp_path / "run"
    code = main(
        ["train", "--model", "ssdlite", "--data", tiny_shapes["root"], "--image-size", "64", "96"]
        + ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4", "--seed", "1"]
        + ["--backbone-weights", str(mobilenet_v2_file), "--out", str(run), "--quiet"]
    )
    assert code == 0
    assert RunConfig.load(run).model == "ssdlite"
    train_args = json.loads((run / "train_args.json").read_text())
    assert train_args["backbone_weights"] == str(mobilenet_v2_file.resolve())
    assert train_args["augmentation"] == "constant" and train_args["optimizer"] == "adam"

    assert (
        main(["evaluate", "--run", str(run), "--data", tiny_shapes["root"], "--split", "test"]) == 0
    )
    assert "mAP" in capsys.readouterr().out
    image = sorted(Path(tiny_shapes["images_dir"]).glob("*.jpg"))[0]
    assert main(["predict", "--run", str(run), str(image), "--out", str(tmp_path / "pred")]) == 0
    assert list((tmp_path / "pred").glob("*"))

    pruned = tmp_path / "pruned"
    assert (
        main(
            ["prune", "--run", str(run), "--method", "filters", "--amount", "0.5"]
            + ["--out", str(pruned)]
        )
        == 0
    )
    config = json.loads((pruned / "config.json").read_text())
    assert config["pruning"]["params_after"] < config["pruning"]["params_before"]

    model = keras.models.load_model(run / "model.keras", compile=False)
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 96, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(images))
    onnx_file = tmp_path / "exports" / "ssdlite.onnx"
    assert main(["export", "--run", str(run), "--format", "onnx", "--out", str(onnx_file)]) == 0
    np.testing.assert_allclose(load_runner(onnx_file)(images), expected, atol=1e-4, rtol=1e-4)
    int8_file = tmp_path / "exports" / "ssdlite_int8.tflite"
    code = main(
        ["export", "--run", str(run), "--format", "tflite", "--quantization", "int8"]
        + ["--num-calibration", "4", "--out", str(int8_file)]
    )
    assert code == 0
    got = load_runner(int8_file)(images)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got[..., -8:], expected[..., -8:])  # anchors kept exact
