"""Export to SavedModel / TFLite (LiteRT) / ONNX / OpenVINO, post-training quantisation, runners.

```python
from model_optimization.export import export, load_runner

export(model, "ssd7.onnx", format="onnx")
export(model, "ssd7_int8.xml", format="openvino", quantization="int8",   # OpenVINO IR + NNCF
       representative_data=train_generator)
export(model, "ssd7_fp16.tflite", format="tflite", quantization="float16")
export(model, "ssd7_int8.tflite", format="tflite", quantization="int8",
       representative_data=train_generator)        # iterable of images, batches or (x, y)
runner = load_runner("ssd7_int8.tflite")            # LiteRTRunner / OnnxRunner / OpenVinoRunner
y_pred = runner(images)                             # same layout as model.predict(images)
boxes = runner.predict_decoded(images, confidence_thresh=0.5, img_height=300, img_width=480)
```

The TensorFlow backend is needed to export (SavedModel, TFLite and tf2onnx all work from a traced
TensorFlow graph; OpenVINO converts the SavedModel); this module imports TensorFlow only inside
the export functions. Running an exported model needs only `ai-edge-litert`, `onnxruntime` or
`openvino` (and numpy); an OpenVINO int8 export also needs `nncf` (the `openvino` extra).

SSD detail: the prediction tensor concatenates class scores, box offsets and the constant anchors
and variances. Full-integer quantisation would give that concatenation one int8 scale, which
destroys the anchor coordinates, so by default an int8 export of an SSD training graph exports
only `(classes_softmax, boxes_concat)` and stores the constant anchors/variances next to the file
(`<path>.constants.npz`); the runners put the full `(batch, n_anchors, n_classes + 1 + 12)` tensor
back together, so callers see the same layout as `model.predict`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import keras
import numpy as np

__all__ = [
    "export",
    "strip_decoder",
    "split_ssd_constants",
    "LiteRTRunner",
    "OnnxRunner",
    "OpenVinoRunner",
    "SavedModelRunner",
    "KerasRunner",
    "load_runner",
]

FORMATS = ("saved_model", "tflite", "onnx", "openvino")
QUANTIZATIONS = (None, "float16", "dynamic", "int8", "bf16")
# What each format can do besides float32 (None).
FORMAT_QUANTIZATIONS = {"tflite": ("float16", "dynamic", "int8"), "openvino": ("bf16", "int8")}
_SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx", "openvino": ".xml"}
# Where an OpenVINO export records its inference precision (the IR itself stays float32).
_OV_PRECISION_KEY = ["ssd_keras", "inference_precision"]
_DECODE_LAYERS = ("DecodeDetections", "DecodeDetectionsFast")
# Names the SSD builders give the layers around the prediction tensor.
_SSD_CLASSES, _SSD_BOXES, _SSD_ANCHORS = "classes_softmax", "boxes_concat", "anchors_concat"
# The same three tensors in SSD300, SSD512 and SSDLite.
_SSD_MBOX_LAYERS = ("mbox_conf_softmax", "mbox_loc", "mbox_priorbox")


def _constants_path(path) -> Path:
    return Path(str(path) + ".constants.npz")


def strip_decoder(model: keras.Model) -> keras.Model:
    """The training-mode graph of an inference-mode SSD: drop a final `DecodeDetections(Fast)`.

    Returns `model` itself when its output is not produced by a decode layer.
    """
    last = model.layers[-1]
    if type(last).__name__ not in _DECODE_LAYERS:
        return model
    return keras.Model(model.inputs, last.input, name=f"{model.name}_raw")


def split_ssd_constants(model: keras.Model) -> tuple[keras.Model, np.ndarray] | None:
    """Split an SSD training graph into its variable part and its constant anchors.

    Returns:
        `(core, constants)`: `core` maps images to `[classes (B, N, n_classes + 1),
        offsets (B, N, 4)]`, `constants` is the `(N, 8)` anchors + variances block;
        `concat([classes, offsets, tile(constants)], -1)` equals `model(images)`. `None` when
        `model` does not have the SSD builders' `classes_softmax`/`boxes_concat`/
        `anchors_concat` (SSD7) or `mbox_conf_softmax`/`mbox_loc`/`mbox_priorbox` (SSD300,
        SSD512, SSDLite) layers feeding its single output.
    """
    names = {layer.name for layer in model.layers}
    layer_names = next(
        (
            triple
            for triple in ((_SSD_CLASSES, _SSD_BOXES, _SSD_ANCHORS), _SSD_MBOX_LAYERS)
            if set(triple) <= names
        ),
        None,
    )
    if layer_names is None or len(model.outputs) != 1:
        return None
    if len(model.inputs) != 1:
        return None
    inputs = model.inputs[0]
    classes = model.get_layer(layer_names[0]).output
    boxes = model.get_layer(layer_names[1]).output
    anchors = keras.Model(inputs, model.get_layer(layer_names[2]).output)
    shape = [1 if d is None else d for d in inputs.shape]
    constants = keras.ops.convert_to_numpy(anchors(np.zeros(shape, dtype="float32")))[0]
    n_out = model.outputs[0].shape[-1]
    if classes.shape[-1] + boxes.shape[-1] + constants.shape[-1] != n_out:
        return None
    return keras.Model(inputs, [classes, boxes], name=f"{model.name}_core"), constants


def _representative_samples(data: Iterable, n: int, input_shape) -> list[np.ndarray]:
    """Up to `n` single images `(1, H, W, C)` float32 from images, batches or `(x, y)` tuples."""
    samples: list[np.ndarray] = []
    rank = len(input_shape)  # with the batch axis
    for item in data:
        x = item[0] if isinstance(item, (tuple, list)) else item
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == rank - 1:
            x = x[None]
        if x.ndim != rank or tuple(x.shape[1:]) != tuple(d for d in input_shape[1:]):
            raise ValueError(
                f"representative_data: expected images of shape {tuple(input_shape[1:])} "
                f"(or batches of them), received an array of shape {x.shape}."
            )
        for image in x:
            samples.append(image[None])
            if len(samples) >= n:
                return samples
    if not samples:
        raise ValueError("representative_data yielded no images.")
    return samples


def _check_export_args(format, quantization, representative_data, io_dtype) -> None:
    """ValueErrors naming the `export` argument: backend, format, quantization, io_dtype."""
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"export needs the TensorFlow backend (KERAS_BACKEND=tensorflow), running "
            f"'{keras.backend.backend()}'."
        )
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {FORMATS}, received format={format!r}.")
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"`quantization` must be one of {QUANTIZATIONS}, received {quantization!r}."
        )
    if quantization is not None and quantization not in FORMAT_QUANTIZATIONS.get(format, ()):
        allowed = " or ".join(
            f"format={f!r}" for f, q in FORMAT_QUANTIZATIONS.items() if quantization in q
        )
        raise ValueError(
            f"quantization={quantization!r} is only available with {allowed}, "
            f"received format={format!r}."
        )
    if quantization == "int8" and representative_data is None:
        raise ValueError("quantization='int8' needs `representative_data` (an iterable of images).")
    if io_dtype not in ("float32", "int8", "uint8"):
        raise ValueError(f"`io_dtype` must be 'float32', 'int8' or 'uint8', received {io_dtype!r}.")
    if io_dtype != "float32" and (quantization != "int8" or format != "tflite"):
        raise ValueError(f"io_dtype={io_dtype!r} needs format='tflite' and quantization='int8'.")


def _export_path(path, format) -> Path:
    """`path` as a Path with the format's suffix checked; its folder created."""
    path = Path(path)
    suffix = _SUFFIXES.get(format)
    if suffix is not None and path.suffix != suffix:
        raise ValueError(f"A {format} export path must end with '{suffix}', received '{path}'.")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _split_constants_if_asked(model, path: Path, split_constants, quantization):
    """The model to export: with `split_constants` (default: for int8) an SSD training graph
    without its anchors, which go to `<path>.constants.npz`; else `model`. A stale side file
    from an earlier export is removed either way."""
    constants_file = _constants_path(path)
    if constants_file.exists():
        constants_file.unlink()
    if split_constants or (split_constants is None and quantization == "int8"):
        split = split_ssd_constants(model)
        if split is not None:
            model, constants = split
            np.savez(constants_file, constants=constants)
        elif split_constants:  # asked for explicitly
            raise ValueError(
                f"split_constants=True needs an SSD training graph (layers {_SSD_CLASSES}, "
                f"{_SSD_BOXES}, {_SSD_ANCHORS} feeding one output); model '{model.name}' is not."
            )
        # else (int8 default): not an SSD training graph, export it whole
    return model


def export(
    model: keras.Model,
    path: str | os.PathLike,
    format: str = "saved_model",
    quantization: str | None = None,
    representative_data: Iterable | None = None,
    num_calibration_samples: int = 100,
    io_dtype: str = "float32",
    split_constants: bool | None = None,
    allow_select_tf_ops: bool = False,
    opset: int | None = None,
    verify_decoder: bool = True,
    verbose: bool = False,
) -> Path:
    """Export `model` for inference.

    Args:
        model: a built Keras model (TensorFlow backend). Inference-mode SSDs keep their decode
            layer in every format (ONNX: checked with `verify_decoder`); use
            `strip_decoder(model)` to export the raw predictions instead.
        path: output directory (`saved_model`) or file (`.tflite`, `.onnx`, `.xml` for
            OpenVINO, whose weights go to the `.bin` beside it).
        format: `'saved_model'`, `'tflite'`, `'onnx'` or `'openvino'`.
        quantization: `None` (float32) or, TFLite: `'float16'` (float16 weights),
            `'dynamic'` (int8 weights, float activations) or `'int8'` (full-integer
            post-training quantisation, needs `representative_data`); OpenVINO: `'bf16'`
            (float32 IR run with OpenVINO's bf16 inference precision where the CPU has it,
            recorded in the IR) or `'int8'` (NNCF post-training quantisation calibrated on
            `representative_data`, like TFLite's).
        representative_data: iterable of images `(H, W, C)`, batches `(B, H, W, C)` or
            `(x, y)` tuples (a `DataGenerator` batch iterator works), in the model's input
            range; the first `num_calibration_samples` images calibrate the int8 ranges.
        num_calibration_samples: images used for calibration.
        io_dtype: `'int8'` export only: dtype of the model's input and outputs, `'float32'`
            (quantise/dequantise inside the model), `'uint8'` or `'int8'`.
        split_constants: export an SSD training graph as `(classes, offsets)` plus a
            `<path>.constants.npz` side file (see module docstring). `None` = only for `'int8'`.
        allow_select_tf_ops: TFLite only: allow TensorFlow ops without a TFLite builtin (the
            result then needs the Flex delegate, which `ai-edge-litert` does not ship).
        opset: ONNX opset (tf2onnx's default when `None`).
        verify_decoder: ONNX only, for a model with a `DecodeDetections(Fast)` layer: run the
            exported file in ONNX Runtime on two images (the first of `representative_data`,
            else seeded uniform noise in [0, 255]) and raise (deleting the file) unless it
            returns the Keras model's detections (same count and classes, scores and boxes to
            1e-3). Skipped with a warning when `onnxruntime` is not installed.
        verbose: let Keras print its export messages.

    Returns:
        The path written.
    """
    _check_export_args(format, quantization, representative_data, io_dtype)
    path = _export_path(path, format)
    model = _split_constants_if_asked(model, path, split_constants, quantization)
    if not getattr(model, "_called", True):
        # Keras' ONNX exporter refuses a model that was never called; one call on zeros fixes it.
        model(np.zeros([1 if d is None else d for d in model.inputs[0].shape], "float32"))
    if format == "saved_model":
        model.export(str(path), format="tf_saved_model", verbose=verbose)
    elif format == "onnx":
        _silence_tf2onnx_numpy_warning()
        model.export(str(path), format="onnx", verbose=verbose, opset_version=opset)
        if verify_decoder and _has_decoder(model):
            _check_onnx_decoder(model, path, representative_data)
    elif format == "openvino":
        _export_openvino(
            model, path, quantization, representative_data, num_calibration_samples, verbose
        )
    else:
        model.export(
            str(path),
            format="litert",
            verbose=verbose,
            **_tflite_converter_options(
                model,
                quantization,
                representative_data,
                num_calibration_samples,
                io_dtype,
                allow_select_tf_ops,
            ),
        )
    return path


def _export_openvino(model, path: Path, quantization, representative_data, num_samples, verbose):
    """OpenVINO IR of `model` via its SavedModel; int8 by NNCF post-training quantisation."""
    import tempfile

    try:
        import openvino as ov
    except ImportError as e:
        raise ImportError(
            "format='openvino' needs `openvino` (pip install 'ssd-keras[openvino]')."
        ) from e
    with tempfile.TemporaryDirectory() as folder:
        model.export(folder, format="tf_saved_model", verbose=verbose)
        ov_model = ov.convert_model(folder)
    if quantization == "int8":
        try:
            import nncf
        except ImportError as e:
            raise ImportError(
                "format='openvino', quantization='int8' needs `nncf` "
                "(pip install 'ssd-keras[openvino]')."
            ) from e
        samples = _representative_samples(
            representative_data, int(num_samples), model.inputs[0].shape
        )
        # Full bias correction (not NNCF's fast one): on a BCCD-trained SSD7 (72 test images) it
        # took int8's mAP from -0.66 to +0.27 points of the float model's (11-point).
        ov_model = nncf.quantize(
            ov_model, nncf.Dataset(samples), subset_size=len(samples), fast_bias_correction=False
        )
    ov_model.set_rt_info("bf16" if quantization == "bf16" else "f32", _OV_PRECISION_KEY)
    # Weights stay float32 in the file: the precision is chosen when the runner compiles.
    ov.save_model(ov_model, str(path), compress_to_fp16=False)


def _has_decoder(model: keras.Model) -> bool:
    return any(type(layer).__name__ in _DECODE_LAYERS for layer in model.layers)


def _check_onnx_decoder(model: keras.Model, path: Path, representative_data) -> None:
    """Raise (and delete `path`) when ONNX Runtime does not reproduce the model's detections.

    The decode layers' NMS is a loop of gathers, top-k and selects, the part of a graph where a
    converter is most likely to go wrong silently (tf2onnx's `where` in a loop body once turned
    -inf sort keys into NaN), so an inference-mode export is checked once before it is handed out.
    """
    import warnings

    try:
        runner = OnnxRunner(path)
    except ImportError:
        warnings.warn(
            f"onnxruntime is not installed: the decode layer of '{path}' was not checked.",
            stacklevel=3,
        )
        return
    shape = tuple(model.inputs[0].shape[1:])
    if representative_data is not None:
        images = np.concatenate(_representative_samples(representative_data, 2, (None, *shape)))
    else:
        images = np.random.default_rng(0).uniform(0, 255, (2, *shape)).astype("float32")
    problem = _decoding_problem(model, images, runner(images))
    if problem is not None:
        path.unlink(missing_ok=True)
        raise ValueError(
            f"The ONNX export of '{model.name}' does not reproduce its decode layer in ONNX "
            f"Runtime ({problem}); '{path}' was deleted. Export `strip_decoder(model)` and "
            "decode with the runner's `predict_decoded`, or use format='tflite'."
        )


def _decoding_problem(model: keras.Model, images: np.ndarray, got: np.ndarray) -> str | None:
    """How `got` (another runtime's output for `images`) differs from `model`'s decoding, if it
    does beyond near-ties (see `model_optimization.decode_check`)."""
    from keras_layers.detection_ops import decode_box_offsets
    from model_optimization.decode_check import decoding_problem

    decoder = model.layers[-1]
    raw = strip_decoder(model)(images, training=False)
    expected = keras.ops.convert_to_numpy(decoder(raw))  # = model(images), network run once
    boxes = decode_box_offsets(
        raw, decoder.coords, decoder.normalize_coords, decoder.img_height, decoder.img_width
    )
    return decoding_problem(
        expected,
        got,
        keras.ops.convert_to_numpy(raw[..., :-12]),
        keras.ops.convert_to_numpy(boxes),
        iou_threshold=decoder.iou_threshold,
        per_class=type(decoder).__name__ == "DecodeDetections",
    )


def _silence_tf2onnx_numpy_warning():
    import warnings

    warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning)


def _tflite_converter_options(
    model, quantization, representative_data, num_samples, io_dtype, allow_select_tf_ops
) -> dict:
    import tensorflow as tf  # TFLite conversion has no keras.ops form

    ops_ = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if allow_select_tf_ops:
        ops_.append(tf.lite.OpsSet.SELECT_TF_OPS)
    options: dict = {"target_spec": {"supported_ops": ops_}}
    if quantization is None:
        return options
    options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        options["target_spec"]["supported_types"] = [tf.float16]
    elif quantization == "int8":
        samples = _representative_samples(
            representative_data, int(num_samples), model.inputs[0].shape
        )

        def representative_dataset():
            for sample in samples:
                yield [sample]

        options["representative_dataset"] = representative_dataset
        int8_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if allow_select_tf_ops:
            int8_ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
        options["target_spec"]["supported_ops"] = int8_ops
        if io_dtype != "float32":
            dtype = tf.int8 if io_dtype == "int8" else tf.uint8
            options["inference_input_type"] = dtype
            options["inference_output_type"] = dtype
    return options


# --------------------------------------------------------------------------------------------
# Runners
# --------------------------------------------------------------------------------------------


class _Runner:
    """Common part: reassembles split SSD outputs and decodes with the numpy decoder."""

    def __init__(self, path):
        self.path = Path(path)
        constants_file = _constants_path(self.path)
        self.constants = np.load(constants_file)["constants"] if constants_file.exists() else None

    def _raw(self, images: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def __call__(self, images) -> np.ndarray | list[np.ndarray]:
        """Run the model on a batch `(B, H, W, C)` (or one image `(H, W, C)`).

        Returns:
            What `model.predict` returns: one array, or a list for several outputs; a split
            SSD export is put back together as `(B, n_anchors, n_classes + 1 + 12)`.
        """
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        outputs = self._raw(images)
        if self.constants is not None:
            classes, offsets = outputs
            tiled = np.broadcast_to(self.constants, (classes.shape[0], *self.constants.shape))
            return np.concatenate([classes, offsets, tiled.astype(classes.dtype)], axis=-1)
        return outputs[0] if len(outputs) == 1 else outputs

    def predict(self, images, verbose=None, batch_size=None):
        """`__call__` with `model.predict`'s signature (`verbose`/`batch_size` are ignored), so a
        runner can stand in for the Keras model, e.g. in `eval_utils`' `Evaluator`."""
        return self(images)

    def predict_decoded(self, images, fast: bool = False, **decode_kwargs) -> list[np.ndarray]:
        """Run and decode with `ssd_encoder_decoder.ssd_output_decoder.decode_detections`
        (or `decode_detections_fast`); `decode_kwargs` go to the decoder.

        Returns:
            One `(k, 6)` array `[class_id, conf, xmin, ymin, xmax, ymax]` per image.
        """
        from ssd_encoder_decoder.ssd_output_decoder import (
            decode_detections,
            decode_detections_fast,
        )

        y_pred = self(images)
        return (decode_detections_fast if fast else decode_detections)(y_pred, **decode_kwargs)


class LiteRTRunner(_Runner):
    """Runs a `.tflite` file with LiteRT (`ai-edge-litert`), any batch size.

    Quantised inputs/outputs (`io_dtype='int8'/'uint8'`) are (de)quantised here, so the runner
    always takes and returns float32 like the Keras model.

    Args:
        path: the `.tflite` file (its `.constants.npz` side file is used when present).
        num_threads: interpreter threads (`None` = LiteRT's default).
    """

    def __init__(self, path, num_threads: int | None = None):
        super().__init__(path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:  # pragma: no cover - depends on the installed extras
            raise ImportError(
                "LiteRTRunner needs `ai-edge-litert` (pip install ai-edge-litert)."
            ) from e
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        signatures = self.interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ValueError(f"'{self.path}': expected one signature, found {sorted(signatures)}.")
        # The signature runner resizes the input to the batch given and names the outputs
        # output_0, output_1, ... in model-output order (tensor order is not guaranteed).
        self.runner = self.interpreter.get_signature_runner(next(iter(signatures)))
        ((self.input_name, self.input_detail),) = self.runner.get_input_details().items()
        details = self.runner.get_output_details()
        self.output_details = [(n, details[n]) for n in sorted(details, key=_output_key)]

    def _raw(self, images):
        x = images.astype(np.float32)
        dtype = self.input_detail["dtype"]
        if np.issubdtype(dtype, np.integer):
            scale, zero = self.input_detail["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        result = self.runner(**{self.input_name: x.astype(dtype)})
        outputs = []
        for name, detail in self.output_details:
            y = result[name]
            if np.issubdtype(detail["dtype"], np.integer):
                scale, zero = detail["quantization"]
                y = (y.astype(np.float32) - zero) * scale
            outputs.append(np.asarray(y, dtype=np.float32))
        return outputs


def _output_key(name: str):
    digits = "".join(c for c in name if c.isdigit())
    return (int(digits) if digits else 0, name)


class OnnxRunner(_Runner):
    """Runs a `.onnx` file with ONNX Runtime.

    Args:
        path: the `.onnx` file (its `.constants.npz` side file is used when present).
        providers: ONNX Runtime execution providers (default CPU).
        num_threads: intra-op threads (`None` = ONNX Runtime's default).
    """

    def __init__(self, path, providers=("CPUExecutionProvider",), num_threads: int | None = None):
        super().__init__(path)
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - depends on the installed extras
            raise ImportError("OnnxRunner needs `onnxruntime` (pip install onnxruntime).") from e
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        self.session = ort.InferenceSession(
            str(self.path), sess_options=options, providers=list(providers)
        )
        self.input_name = self.session.get_inputs()[0].name

    def _raw(self, images):
        return self.session.run(None, {self.input_name: images.astype(np.float32)})


class OpenVinoRunner(_Runner):
    """Runs an OpenVINO IR (`.xml` + `.bin`) on the CPU, any batch size.

    OpenVINO picks bf16 by default on CPUs that have it; this runner uses the precision the
    export recorded (`'f32'`, or `'bf16'` for `quantization='bf16'`), so a float32 export gives
    float32 results (an int8 export runs its int8 layers in int8 either way).

    Args:
        path: the `.xml` file (its `.constants.npz` side file is used when present).
        num_threads: inference threads (`None` = OpenVINO's default, all cores).
        precision: `'f32'` or `'bf16'` to override the recorded precision (bf16 falls back
            to f32 on a CPU without bf16 support).
        device: the OpenVINO device (default `'CPU'`).
    """

    def __init__(self, path, num_threads: int | None = None, precision=None, device="CPU"):
        super().__init__(path)
        try:
            import openvino as ov
        except ImportError as e:  # pragma: no cover - depends on the installed extras
            raise ImportError(
                "OpenVinoRunner needs `openvino` (pip install 'ssd-keras[openvino]')."
            ) from e
        if precision not in (None, "f32", "bf16"):
            raise ValueError(f"`precision` must be None, 'f32' or 'bf16', received {precision!r}.")
        core = ov.Core()
        model = core.read_model(str(self.path))
        if precision is None:
            precision = "f32"
            if model.has_rt_info(_OV_PRECISION_KEY):
                precision = str(model.get_rt_info(_OV_PRECISION_KEY).astype(str))
        if precision == "bf16" and "BF16" not in core.get_property(
            device, "OPTIMIZATION_CAPABILITIES"
        ):
            precision = "f32"
        self.precision = precision
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if num_threads:
            config["INFERENCE_NUM_THREADS"] = int(num_threads)
        self.compiled = core.compile_model(model, device, config)
        self.request = self.compiled.create_infer_request()
        # Outputs in model-output order (output_0, output_1, ...), as for the other runners.
        names = [o.get_any_name() for o in self.compiled.outputs]
        self.output_order = sorted(range(len(names)), key=lambda i: _output_key(names[i]))

    def _raw(self, images):
        self.request.infer([np.ascontiguousarray(images, dtype=np.float32)])
        return [np.array(self.request.get_output_tensor(i).data) for i in self.output_order]


class SavedModelRunner(_Runner):
    """Runs a SavedModel directory written by `export(..., format='saved_model')` (TensorFlow)."""

    def __init__(self, path):
        super().__init__(path)
        import tensorflow as tf  # a SavedModel needs TensorFlow to run

        self._tf = tf
        self.module = tf.saved_model.load(str(self.path))

    def _raw(self, images):
        out = self.module.serve(self._tf.constant(images.astype(np.float32)))
        if isinstance(out, dict):
            out = [out[k] for k in sorted(out, key=_output_key)]
        elif not isinstance(out, (list, tuple)):
            out = [out]
        return [np.asarray(o) for o in out]


class KerasRunner(_Runner):
    """The same interface over a Keras model or `.keras` file (for like-for-like timing)."""

    def __init__(self, model_or_path):
        if isinstance(model_or_path, keras.Model):
            self.path, self.constants = None, None
            self.model = model_or_path
        else:
            super().__init__(model_or_path)
            self.model = keras.models.load_model(str(model_or_path))

    def _raw(self, images):
        out = self.model(images.astype(np.float32), training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        return [keras.ops.convert_to_numpy(o) for o in out]


def load_runner(path, **kwargs) -> _Runner:
    """A runner chosen by the file: `.tflite` -> LiteRT, `.onnx` -> ONNX Runtime, `.xml` ->
    OpenVINO, `.keras`/`.h5` -> Keras, a directory -> SavedModel. `kwargs` go to the runner."""
    path = Path(path)
    if path.suffix == ".tflite":
        return LiteRTRunner(path, **kwargs)
    if path.suffix == ".onnx":
        return OnnxRunner(path, **kwargs)
    if path.suffix == ".xml":
        return OpenVinoRunner(path, **kwargs)
    if path.suffix in (".keras", ".h5"):
        return KerasRunner(path)
    if path.is_dir():
        return SavedModelRunner(path, **kwargs)
    raise ValueError(
        f"Cannot tell which runtime runs '{path}' (expected .tflite, .onnx, .xml, .keras)."
    )
