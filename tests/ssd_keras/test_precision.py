"""Mixed precision (`ssd_keras.precision`): models built under a policy, their float32 form
for export, the mixed form of a float32 model and ``predict``/``evaluate --precision``."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from ssd_keras.cli import main
from ssd_keras.config import RunConfig
from ssd_keras.precision import dtype_policy, float32_tail, mixed_model

SIZE = (64, 96)


def _images(n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, *SIZE, 3)).astype("float32")


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_model_outputs_float32_and_finite(policy):
    config = RunConfig.create("ssd7", ["background", "a", "b"], image_size=SIZE)
    reference = config.build_model()
    with dtype_policy(policy):
        model = config.build_model()
    assert keras.config.dtype_policy().name == "float32"  # restored
    assert model.get_layer("conv1").compute_dtype == policy.split("_")[1]
    images = _images()
    output = model.predict(images, verbose=0)
    assert output.dtype == np.float32 and np.isfinite(output).all()
    np.testing.assert_allclose(output[..., :3].sum(-1), 1.0, rtol=1e-5)  # float32 softmax
    # The anchors and variances are exactly the float32 model's.
    np.testing.assert_array_equal(output[..., -8:], reference.predict(images, verbose=0)[..., -8:])


def test_float32_model_of_a_mixed_precision_model():
    """What export_run exports for a --mixed-precision run: the same weights, every layer
    float32 (TFLite has no bfloat16 kernels); a float32 model comes back as it is."""
    from ssd_keras.train import float32_model

    config = RunConfig.create("ssd7", ["background", "a"], image_size=SIZE)
    with dtype_policy("mixed_bfloat16"):
        mixed = config.build_model()
    plain = float32_model(mixed)
    assert {layer.dtype_policy.name for layer in plain.layers} == {"float32"}
    images = _images(1, seed=1)
    reference = config.build_model()
    reference.set_weights(mixed.get_weights())
    np.testing.assert_allclose(
        plain.predict(images, verbose=0), reference.predict(images, verbose=0), atol=1e-5
    )
    assert float32_model(reference) is reference


def test_float32_tail_is_the_output_stage():
    """The weightless layers after the heads: anchors, reshapes, concatenations, softmax."""
    model = RunConfig.create("ssd7", ["background", "a"], image_size=SIZE).build_model()
    tail = float32_tail(model)
    expected = {"classes_concat", "boxes_concat", "anchors_concat", "classes_softmax"}
    for i in (4, 5, 6, 7):
        expected |= {f"anchors{i}", f"anchors{i}_reshape", f"classes{i}_reshape"}
        expected |= {f"boxes{i}_reshape"}
    assert tail == expected | {"predictions"}


def test_mixed_model_equals_a_model_built_under_the_policy():
    """The mixed form of a float32 model computes what the builder under ``mixed_bfloat16``
    computes with the same weights (bit for bit), outputs float32 and keeps float32 anchors."""
    config = RunConfig.create("ssd7", ["background", "a", "b"], image_size=SIZE)
    plain = config.build_model()
    with dtype_policy("mixed_bfloat16"):
        built = config.build_model()
    built.set_weights(plain.get_weights())
    mixed = mixed_model(plain, "mixed_bfloat16")
    assert mixed.get_layer("conv1").compute_dtype == "bfloat16"
    assert mixed.get_layer("anchors4").compute_dtype == "float32"
    assert mixed.get_layer("conv1").kernel.dtype == "float32"  # variables stay float32
    images = _images()
    output = mixed.predict(images, verbose=0)
    assert output.dtype == np.float32
    np.testing.assert_array_equal(output, built.predict(images, verbose=0))
    float32_output = plain.predict(images, verbose=0)
    np.testing.assert_array_equal(output[..., -8:], float32_output[..., -8:])
    # bfloat16 keeps 8 significant bits: close to the float32 model, not equal to it
    assert 0 < np.abs(output[..., :-8] - float32_output[..., :-8]).max() < 0.5
    # and back: the float32 form of the mixed model is the float32 model
    from ssd_keras.precision import float32_model

    np.testing.assert_allclose(
        float32_model(mixed).predict(images, verbose=0), float32_output, atol=1e-5
    )


def test_mixed_model_rejects_a_non_mixed_policy():
    model = RunConfig.create("ssd7", ["background", "a"], image_size=SIZE).build_model()
    with pytest.raises(ValueError, match="mixed_\\* policy, got 'bfloat16'"):
        mixed_model(model, "bfloat16")


@pytest.fixture
def untrained_run(tiny_shapes, tmp_path):
    """A run folder (config.json + model.keras) of an untrained SSD7 for `tiny_shapes`."""
    config = RunConfig.create("ssd7", tiny_shapes["classes"], image_size=SIZE)
    run = tmp_path / "run"
    run.mkdir()
    config.save(run)
    keras.utils.set_random_seed(0)
    config.build_model().save(run / "model.keras")
    return run


def test_load_model_folds_and_takes_a_precision(untrained_run):
    """What predict/evaluate run: the BatchNormalizations folded (fold=False: the model as
    saved), in bfloat16 with precision='bf16'."""
    from ssd_keras.predict import load_model

    def batch_norms(model):
        return [
            layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
        ]

    model, _ = load_model(untrained_run, precision="bf16")
    assert model.get_layer("conv1").compute_dtype == "bfloat16" and not batch_norms(model)
    plain, _ = load_model(untrained_run)
    assert plain.get_layer("conv1").compute_dtype == "float32" and not batch_norms(plain)
    saved, _ = load_model(untrained_run, fold=False)
    assert len(batch_norms(saved)) == 7
    images = _images()
    np.testing.assert_allclose(
        plain.predict(images, verbose=0), saved.predict(images, verbose=0), atol=1e-4
    )
    with pytest.raises(ValueError, match="precision must be one of"):
        load_model(untrained_run, precision="fp16")


def test_cli_precision_bf16(untrained_run, tiny_shapes, tmp_path, capsys):
    """predict/evaluate --precision bf16 run the Keras model in bfloat16; with an export or
    an export runtime the flag is refused in one line."""
    out = tmp_path / "pred"
    images = tiny_shapes["images_dir"]
    argv = ["predict", "--run", str(untrained_run), "--precision", "bf16", images]
    assert main(argv + ["--out", str(out), "--confidence", "0.01"]) == 0
    written = sorted(path.name for path in out.glob("*.jpg"))
    assert len(written) == len(list(Path(images).glob("*.jpg"))) > 0
    code = main(["evaluate", "--run", str(untrained_run), "--precision", "bf16", "--data",
                 tiny_shapes["root"], "--json"])  # fmt: skip
    assert code == 0 and "mAP" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(argv[:-1] + ["--runtime", "litert", images])
    assert exit_info.value.code == 2
    assert "--precision bf16 runs the Keras model, not --runtime litert" in capsys.readouterr().err
    exported = tmp_path / "model.tflite"
    exported.write_bytes(b"not read")
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--run", str(exported), "--precision", "bf16", images])
    assert exit_info.value.code == 2
    assert "is an export, which keeps the precision" in capsys.readouterr().err
