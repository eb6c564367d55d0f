"""OpenVINO export (float32 / bf16 / NNCF int8) and `OpenVinoRunner`: outputs match the Keras model.

Skipped when the `openvino` extra is absent; CI installs it (Makefile `EXTRAS`).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from model_optimization.export import OpenVinoRunner, export, load_runner

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="export needs the TensorFlow backend"
)


def _need(module):
    return pytest.importorskip(module, reason=f"the openvino extra '{module}' is not installed")


def _images(n, seed=0, size=(96, 160, 3)):
    return np.random.default_rng(seed).uniform(0, 255, (n, *size)).astype("float32")


@pytest.fixture(scope="module")
def ssd7(helpers):
    model, _ = helpers.ssd7_small()
    helpers.randomize_batchnorm(model)
    return model


def test_openvino_argument_errors(helpers, tmp_path):
    model = helpers.small_conv_model()
    with pytest.raises(ValueError, match="end with '.xml'"):
        export(model, tmp_path / "m.onnx", format="openvino")
    with pytest.raises(ValueError, match="only available with format='openvino'"):
        export(model, tmp_path / "m.tflite", format="tflite", quantization="bf16")
    with pytest.raises(ValueError, match="only available with format='tflite'"):
        export(model, tmp_path / "m.xml", format="openvino", quantization="float16")
    with pytest.raises(ValueError, match="representative_data"):
        export(model, tmp_path / "m.xml", format="openvino", quantization="int8")
    with pytest.raises(ValueError, match="io_dtype"):
        export(model, tmp_path / "m.xml", format="openvino", io_dtype="uint8")


def test_ssd7_openvino_float32_round_trip(ssd7, tmp_path):
    _need("openvino")
    path = export(ssd7, tmp_path / "ssd7.xml", format="openvino")
    assert path.with_suffix(".bin").is_file()
    runner = load_runner(path)
    assert isinstance(runner, OpenVinoRunner)
    # OpenVINO would pick bf16 on a CPU that has it; a float32 export must run in float32.
    assert runner.precision == "f32"
    assert runner.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
    x = _images(3)
    expected = ssd7.predict(x, verbose=0)
    assert runner(x).shape == expected.shape == (3, 1268, 18)
    np.testing.assert_allclose(runner(x), expected, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(runner(x[0]), expected[:1], atol=1e-4, rtol=1e-4)  # any batch


def test_ssd7_openvino_bf16_records_its_precision(ssd7, tmp_path):
    ov = _need("openvino")
    path = export(ssd7, tmp_path / "ssd7_bf16.xml", format="openvino", quantization="bf16")
    runner = OpenVinoRunner(path)
    has_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert runner.precision == ("bf16" if has_bf16 else "f32")
    assert OpenVinoRunner(path, precision="f32").precision == "f32"
    x = _images(2, seed=3)
    expected = ssd7.predict(x, verbose=0)
    got = runner(x)
    # bf16 keeps 8 bits of mantissa: scores within a few hundredths, anchors exact enough
    assert np.abs(got[..., :6] - expected[..., :6]).max() < 0.1
    np.testing.assert_allclose(got[..., -8:], expected[..., -8:], rtol=1e-2)
    with pytest.raises(ValueError, match="precision"):
        OpenVinoRunner(path, precision="fp16")


def test_ssd7_openvino_int8_is_quantised_and_keeps_anchors(ssd7, tmp_path):
    _need("openvino")
    _need("nncf")
    calibration = _images(16, seed=1)

    def batches():  # what a DataGenerator yields: (images, labels) batches
        for i in range(0, 16, 4):
            yield calibration[i : i + 4], [np.zeros((0, 5))] * 4

    path = tmp_path / "ssd7_int8.xml"
    export(ssd7, path, format="openvino", quantization="int8", representative_data=batches())
    assert (tmp_path / "ssd7_int8.xml.constants.npz").exists()  # anchors kept out of int8
    runner = OpenVinoRunner(path)
    xml = path.read_text()
    # NNCF quantised activations (FakeQuantize) and stored int8 weights (i8 constants)
    assert xml.count('type="FakeQuantize"') > 4 and xml.count('element_type="i8"') > 4
    x = _images(2, seed=5)
    expected = ssd7.predict(x, verbose=0)
    got = runner(x)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got[..., -8:], expected[..., -8:])
    score_err = np.abs(got[..., :6] - expected[..., :6])
    assert score_err.mean() < 0.02 and score_err.max() < 0.25
    assert (got[..., :6].argmax(-1) == expected[..., :6].argmax(-1)).mean() > 0.9
