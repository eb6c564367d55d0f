"""Export to SavedModel / TFLite / ONNX and the runners: outputs match the Keras model."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from model_optimization.export import (
    LiteRTRunner,
    OnnxRunner,
    SavedModelRunner,
    _check_onnx_decoder,
    _decoding_problem,
    export,
    load_runner,
    split_ssd_constants,
    strip_decoder,
)

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="export needs the TensorFlow backend"
)


def _need(module):
    return pytest.importorskip(module, reason=f"the export extra '{module}' is not installed")


def _tame_ssd(model, seed=0):
    """Random BN statistics and small box offsets (boxes of sane sizes)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                 rng.uniform(0.5, 2.0, c)]
            )  # fmt: skip
        elif layer.name.startswith("boxes") and isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel * 0.02, bias])
    return model


def _images(n, seed=0, size=(96, 160, 3)):
    return np.random.default_rng(seed).uniform(0, 255, (n, *size)).astype("float32")


def _sorted_rows(rows):
    return rows[np.lexsort(np.round(rows[:, ::-1], 2).T)]


def test_export_argument_errors(helpers, tmp_path):
    model = helpers.small_conv_model()
    with pytest.raises(ValueError, match="format"):
        export(model, tmp_path / "m.x", format="coreml")
    with pytest.raises(ValueError, match="only available with format='tflite'"):
        export(model, tmp_path / "m.onnx", format="onnx", quantization="float16")
    with pytest.raises(ValueError, match="representative_data"):
        export(model, tmp_path / "m.tflite", format="tflite", quantization="int8")
    with pytest.raises(ValueError, match="end with '.tflite'"):
        export(model, tmp_path / "m.onnx", format="tflite")
    with pytest.raises(ValueError, match="end with '.onnx'"):
        export(model, tmp_path / "m.tflite", format="onnx")
    with pytest.raises(ValueError, match="io_dtype"):
        export(model, tmp_path / "m.tflite", format="tflite", io_dtype="uint8")
    with pytest.raises(ValueError, match="split_constants=True"):
        export(model, tmp_path / "m.tflite", format="tflite", split_constants=True)
    with pytest.raises(ValueError, match="Cannot tell"):
        load_runner(tmp_path / "m.bin")


@pytest.mark.parametrize("fmt", ["saved_model", "tflite", "onnx"])
def test_small_model_export_matches_keras(helpers, tmp_path, fmt):
    if fmt == "tflite":
        _need("ai_edge_litert")
    if fmt == "onnx":
        _need("tf2onnx")
        _need("onnxruntime")
    model = helpers.small_conv_model()
    helpers.randomize_batchnorm(model)
    path = tmp_path / {"saved_model": "sm", "tflite": "m.tflite", "onnx": "m.onnx"}[fmt]
    export(model, path, format=fmt)
    runner = load_runner(path)
    assert isinstance(runner, {"saved_model": SavedModelRunner, "tflite": LiteRTRunner,
                               "onnx": OnnxRunner}[fmt])  # fmt: skip
    x = np.random.default_rng(0).normal(size=(3, 16, 16, 3)).astype("float32")
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(runner(x), expected, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(runner(x[0]), expected[:1], atol=1e-4, rtol=1e-4)  # batch 1
    np.testing.assert_allclose(runner.predict(x, verbose=0), expected, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def tame_ssd7(helpers):
    model, _ = helpers.ssd7_small()
    return _tame_ssd(model)


@pytest.fixture(scope="module")
def ssd7_fp32_tflite(tame_ssd7, tmp_path_factory):
    _need("ai_edge_litert")
    path = tmp_path_factory.mktemp("export") / "ssd7.tflite"
    export(tame_ssd7, path, format="tflite")
    return path


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_ssd7_float_export_matches_keras_and_decodes_the_same(
    tame_ssd7, ssd7_fp32_tflite, tmp_path, fmt
):
    if fmt == "onnx":
        _need("tf2onnx")
        _need("onnxruntime")
    decoder = pytest.importorskip("ssd_encoder_decoder.ssd_output_decoder")
    model = tame_ssd7
    x = _images(3)
    expected = model.predict(x, verbose=0)
    decode_kwargs = dict(
        confidence_thresh=0.3, iou_threshold=0.45, top_k=50, normalize_coords=True,
        img_height=96, img_width=160,
    )  # fmt: skip
    expected_boxes = decoder.decode_detections(expected, **decode_kwargs)
    assert sum(len(b) for b in expected_boxes) > 0  # the comparison below is not vacuous

    if fmt == "tflite":
        path = ssd7_fp32_tflite
    else:
        path = tmp_path / "ssd7.onnx"
        export(model, path, format="onnx")
    runner = load_runner(path)
    y_pred = runner(x)
    assert y_pred.shape == expected.shape == (3, 1268, 18)
    np.testing.assert_allclose(y_pred, expected, atol=1e-4, rtol=1e-4)
    boxes = runner.predict_decoded(x, **decode_kwargs)
    for got, want in zip(boxes, expected_boxes):
        assert got.shape == want.shape
        # equal confidences (saturated softmax) may come out in either order: sort rows
        got, want = _sorted_rows(got), _sorted_rows(want)
        np.testing.assert_array_equal(got[:, 0], want[:, 0])  # classes
        np.testing.assert_allclose(got[:, 1:], want[:, 1:], atol=1e-3)  # conf, pixels


def test_ssd7_full_integer_quantization_runs_and_keeps_anchors(tame_ssd7, tmp_path):
    _need("ai_edge_litert")
    model = tame_ssd7
    calibration = _images(16, seed=1)

    def batches():  # what a DataGenerator yields: (images, labels) batches
        for i in range(0, 16, 4):
            yield calibration[i : i + 4], [np.zeros((0, 5))] * 4

    path = tmp_path / "ssd7_int8.tflite"
    export(model, path, format="tflite", quantization="int8", representative_data=batches())
    assert (tmp_path / "ssd7_int8.tflite.constants.npz").exists()
    runner = LiteRTRunner(path)
    details = runner.interpreter.get_tensor_details()
    assert sum(d["dtype"] == np.int8 for d in details) > 10  # really an integer graph

    x = _images(2, seed=5)
    expected = model.predict(x, verbose=0)
    y_pred = runner(x)
    assert y_pred.shape == expected.shape
    # anchors and variances come from the side file: exact
    np.testing.assert_array_equal(y_pred[..., -8:], expected[..., -8:])
    # scores and offsets: int8 error (softmax step 1/256; offsets calibrated per tensor)
    score_err = np.abs(y_pred[..., :6] - expected[..., :6])
    offset_err = np.abs(y_pred[..., 6:10] - expected[..., 6:10])
    # measured on this model: score error mean 0.006 / max 0.11, offsets mean 0.001 / max 0.007
    assert score_err.mean() < 0.02 and score_err.max() < 0.25
    assert offset_err.mean() < 0.01
    # most anchors keep their arg-max class
    agree = (y_pred[..., :6].argmax(-1) == expected[..., :6].argmax(-1)).mean()
    assert agree > 0.9

    # integer input/output tensors are (de)quantised by the runner
    uint8_path = tmp_path / "ssd7_uint8.tflite"
    export(
        model, uint8_path, format="tflite", quantization="int8",
        representative_data=calibration, io_dtype="uint8", num_calibration_samples=8,
    )  # fmt: skip
    runner8 = LiteRTRunner(uint8_path)
    assert runner8.input_detail["dtype"] == np.uint8
    score_err8 = np.abs(runner8(x)[..., :6] - expected[..., :6])
    assert score_err8.mean() < 0.02 and score_err8.max() < 0.25


def test_float16_tflite_is_smaller_and_close(helpers, tmp_path):
    _need("ai_edge_litert")
    model, _ = helpers.ssd7_small()
    _tame_ssd(model)
    export(model, tmp_path / "fp32.tflite", format="tflite")
    export(model, tmp_path / "fp16.tflite", format="tflite", quantization="float16")
    assert (tmp_path / "fp16.tflite").stat().st_size < 0.7 * (
        tmp_path / "fp32.tflite"
    ).stat().st_size
    x = _images(2)
    np.testing.assert_allclose(
        LiteRTRunner(tmp_path / "fp16.tflite")(x), model.predict(x, verbose=0), atol=2e-2
    )


def test_strip_decoder_and_split_constants(helpers):
    inference, _ = helpers.ssd7_small(mode="inference")
    training, _ = helpers.ssd7_small(mode="training")  # same seed: same weights
    raw = strip_decoder(inference)
    assert raw.outputs[0].shape[1:] == (1268, 18)
    assert strip_decoder(training) is training
    x = _images(1)
    np.testing.assert_allclose(raw.predict(x, verbose=0), training.predict(x, verbose=0), atol=1e-6)
    core, constants = split_ssd_constants(training)
    classes, offsets = core.predict(x, verbose=0)
    joined = np.concatenate([classes, offsets, constants[None]], -1)
    np.testing.assert_allclose(joined, training.predict(x, verbose=0), atol=1e-6)
    assert split_ssd_constants(helpers.small_conv_model()) is None


@pytest.mark.slow
def test_inference_mode_ssd7_exports_with_its_decode_layer(helpers, tmp_path):
    _need("ai_edge_litert")
    _need("tf2onnx")
    _need("onnxruntime")
    model, _ = helpers.ssd7_small(mode="inference", confidence_thresh=0.3, top_k=50)
    _tame_ssd(model)
    x = _images(2)
    expected = model.predict(x, verbose=0)
    assert (expected[..., 1] > 0).sum() > 0
    for path in (tmp_path / "inf.tflite", tmp_path / "inf.onnx"):
        export(model, path, format=path.suffix[1:])
        got = load_runner(path)(x)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-3)
    # the raw graph + numpy decoding gives the same detections
    raw = tmp_path / "raw.onnx"
    export(strip_decoder(model), raw, format="onnx")
    decoded = load_runner(raw).predict_decoded(
        x, confidence_thresh=0.3, top_k=50, img_height=x.shape[1], img_width=x.shape[2]
    )
    for image_rows, layer_rows in zip(decoded, expected):
        kept = layer_rows[layer_rows[:, 1] > 0]
        np.testing.assert_allclose(image_rows, kept, atol=1e-3)


def _crowded_ssd7(helpers, mode):
    """SSD7 whose raw output makes thousands of overlapping NMS candidates per image.

    Random BN statistics, class heads scaled down (flat softmax: every class scores ~0.1-0.3, so
    with confidence_thresh=0.1 most of the 1268 anchors x 5 classes are candidates, and the
    boxes of neighbouring anchors overlap) and box heads scaled down (boxes of anchor size).
    """
    model, _ = helpers.ssd7_small(
        mode=mode, confidence_thresh=0.1, iou_threshold=0.45, top_k=300, nms_max_output_size=400
    )
    helpers.randomize_batchnorm(model)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.name.startswith(("boxes", "classes")):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel * (0.02 if layer.name.startswith("boxes") else 0.1), bias])
    return model


@pytest.mark.parametrize("mode", ["inference", "inference_fast"])
def test_inference_mode_ssd7_onnx_export_gives_the_keras_detections(helpers, tmp_path, mode):
    _need("tf2onnx")
    _need("onnxruntime")
    model = _crowded_ssd7(helpers, mode)
    x = _images(2)
    raw = strip_decoder(model).predict(x, verbose=0)
    scores = raw[..., 1:-12]
    assert ((scores > 0.1).sum(axis=(1, 2)) > 3000).all()  # many candidates: the NMS works hard
    expected = model.predict(x, verbose=0)  # (2, 300, 6)
    n_kept = (expected[..., 1] > 0).sum(axis=1)
    assert (n_kept >= 100).all() and len(np.unique(expected[..., 0])) >= 4  # several classes

    path = export(model, tmp_path / f"{mode}.onnx", format="onnx")  # checks the decoding itself
    got = load_runner(path)(x)
    # The same detections up to near-ties (rows whose confidences differ by ~1e-7 may swap
    # places or, through NMS and the top_k cut, give way to their tied twin) ...
    assert _decoding_problem(model, x, got) is None
    # ... and those are rare: nearly every row has its exact twin in the same place.
    same_place = (got[..., 0] == expected[..., 0]) & (np.abs(got - expected).max(-1) <= 1e-3)
    assert same_place.mean() > 0.95


@pytest.mark.parametrize("mode", ["inference", "inference_fast"])
def test_onnx_decode_check_rejects_a_broken_nms(helpers, tmp_path, mode):
    """An export whose NMS threshold was changed in the ONNX graph (a converter getting an
    attribute wrong) keeps boxes Keras suppresses: the export-time check must reject it."""
    _need("tf2onnx")
    _need("onnxruntime")
    onnx = _need("onnx")
    from onnx import numpy_helper

    model = _crowded_ssd7(helpers, mode)
    path = export(model, tmp_path / "ok.onnx", format="onnx", verify_decoder=False)
    graph = onnx.load(path)
    changed = 0
    for node in graph.graph.node:  # the NMS threshold sits in the decode loop's body
        for attribute in node.attribute:
            if attribute.type != onnx.AttributeProto.GRAPH:
                continue
            for tensor in attribute.g.initializer:
                value = numpy_helper.to_array(tensor)
                if value.size == 1 and value.dtype.kind == "f" and np.isclose(value, 0.45):
                    tensor.CopyFrom(numpy_helper.from_array(np.full_like(value, 0.9), tensor.name))
                    changed += 1
    assert changed > 0
    broken = tmp_path / "broken.onnx"
    onnx.save(graph, broken)
    _check_onnx_decoder(model, tmp_path / "ok.onnx", None)  # the untouched file passes
    with pytest.raises(ValueError, match="does not reproduce its decode layer.*one output only"):
        _check_onnx_decoder(model, broken, None)
    assert not broken.exists()  # a rejected export is deleted


def test_greedy_nms_onnx_matches_keras_over_several_chunks(tmp_path):
    """The NMS loop alone through tf2onnx, on inputs built to stress it: duplicate boxes, equal
    scores (ties broken by index), zero-area boxes, and enough survivors that the chunk loop
    runs more than once (the converted loop used to turn its -inf sort keys into NaN)."""
    tf2onnx = _need("tf2onnx")
    ort = _need("onnxruntime")
    import tensorflow as tf

    from keras_layers.detection_ops import CHUNK_SIZE, greedy_nms_top_k

    rng = np.random.default_rng(1)
    batch, n, n_classes = 2, 1500, 3
    centers = rng.uniform(20, 80, (batch, n, 2))
    sizes = rng.uniform(5, 30, (batch, n, 2))
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], -1).astype("float32")
    boxes[:, :50] = boxes[:, 50:100]  # exact duplicates (IoU 1)
    boxes[:, 100:110, 2:] = boxes[:, 100:110, :2]  # zero-area boxes (IoU 0 with everything)
    scores = (np.round(rng.uniform(0, 1, (batch, n, n_classes)) * 20) / 20).astype("float32")
    spec = (tf.TensorSpec((None, n, 4), tf.float32, name="boxes"),
            tf.TensorSpec((None, n, n_classes), tf.float32, name="scores"))  # fmt: skip

    for per_class, top_k, cap in [(True, 400, 300), (False, 300, 300), (True, 20, 5)]:

        def nms(boxes, scores, per_class=per_class, top_k=top_k, cap=cap):
            if per_class:
                ids = tf.broadcast_to(
                    tf.range(1, n_classes + 1, dtype=scores.dtype), tf.shape(scores)
                )
            else:
                ids = tf.cast(tf.argmax(scores, -1) + 1, scores.dtype)[..., None]
                scores = tf.reduce_max(scores, -1, keepdims=True)
            return greedy_nms_top_k(boxes, ids, scores, scores > 0.02, 0.45, top_k, cap, per_class)

        expected = nms(tf.constant(boxes), tf.constant(scores)).numpy()
        path = tmp_path / "nms.onnx"
        tf2onnx.convert.from_function(
            tf.function(nms, input_signature=spec), input_signature=spec, output_path=str(path)
        )
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {"boxes": boxes, "scores": scores})[0]
        np.testing.assert_array_equal(got, expected)
        if top_k == 400:  # the last output row was reached after more than one chunk
            last_score = expected[:, -1, 1]
            visited = (scores.reshape(batch, -1) >= last_score[:, None]).sum(axis=1)
            assert (expected[..., 1] > 0).all() and (visited > CHUNK_SIZE).all()


def test_onnx_export_refuses_a_decoder_that_onnx_runtime_gets_wrong(helpers, tmp_path, monkeypatch):
    """The check after an inference-mode ONNX export: a runtime that returns other detections
    makes export raise and delete the file (here a stand-in runner shifts one box by 1 px)."""
    import importlib

    export_module = importlib.import_module("model_optimization.export")  # not the function

    model = _crowded_ssd7(helpers, "inference")
    path = tmp_path / "bad.onnx"
    monkeypatch.setattr(model, "export", lambda p, **kwargs: Path(p).write_bytes(b"onnx"))

    class ShiftedRunner:
        def __init__(self, p):
            pass

        def __call__(self, images):
            y = keras.ops.convert_to_numpy(model(images))
            y[0, 0, 2] += 1.0
            return y

    monkeypatch.setattr(export_module, "OnnxRunner", ShiftedRunner)
    with pytest.raises(ValueError, match="does not reproduce its decode layer"):
        export(model, path, format="onnx")
    assert not path.exists()
    assert export(model, path, format="onnx", verify_decoder=False) == path and path.exists()
    # a runner that reproduces the model passes the check
    monkeypatch.setattr(ShiftedRunner, "__call__", lambda self, images: model(images).numpy())
    path.unlink()
    assert export(model, path, format="onnx") == path and path.exists()
