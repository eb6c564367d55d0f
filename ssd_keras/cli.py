"""``python -m ssd_keras`` / ``ssd-keras``: train, evaluate, predict, prune, export, demo, inspect,
anchors.

Arguments are checked (files exist, numbers in range) before TensorFlow is imported, so mistakes
are reported in a second with the argument, the value and what was expected. Errors exit with
status 2 and one line on stderr (set ``SSD_KERAS_DEBUG=1`` for the traceback).

``train`` saves its arguments in ``RUN/train_args.json``; ``train --out RUN --resume`` alone
continues the run with them (``--epochs`` may be raised; any other argument given with a
different value than the saved one is an error).

This module holds the argument parser and `main`; the commands are in `ssd_keras.commands`,
the dataset options in `ssd_keras.dataset_args`, the run folder's ``train_args.json`` and what
a rerun does with an existing folder in `ssd_keras.run_folder`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import threading
from pathlib import Path

from ssd_keras import __version__
from ssd_keras.cli_errors import EXIT_USAGE, CLIError, data_error_line
from ssd_keras.commands import (
    COMMANDS,
    cmd_anchors,
    cmd_demo,
    cmd_evaluate,
    cmd_export,
    cmd_inspect,
    cmd_predict,
    cmd_prune,
    cmd_train,
)
from ssd_keras.config import MODEL_NAMES
from ssd_keras.dataset_args import CSV_FORMAT, DATA_KEYS
from ssd_keras.run_folder import (
    RESUME_OVERRIDES,
    SOURCE_RECIPE_KEYS,
    TRAIN_ARGS_FILE,
    TRAIN_DEFAULTS,
)

__all__ = [
    "CLIError",
    "COMMANDS",
    "CSV_FORMAT",
    "DATA_KEYS",
    "EXIT_USAGE",
    "RESUME_OVERRIDES",
    "SOURCE_RECIPE_KEYS",
    "TRAIN_ARGS_FILE",
    "TRAIN_DEFAULTS",
    "build_parser",
    "cmd_anchors",
    "cmd_demo",
    "cmd_evaluate",
    "cmd_export",
    "cmd_inspect",
    "cmd_predict",
    "cmd_prune",
    "cmd_train",
    "main",
]


def _checked(convert, accept, expected: str):
    """An argparse ``type``: ``convert(text)``, refused unless ``accept(value)``."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_positive_float = _checked(float, lambda v: v > 0, "a positive number")
_probability = _checked(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
_non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
_fraction = _checked(float, lambda v: 0 < v < 1, "a number in (0, 1)")
_non_negative_float = _checked(float, lambda v: v >= 0, "a number >= 0")
_unit_float = _checked(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def _add_image_size_arg(p) -> None:
    p.add_argument(
        "--image-size",
        type=_positive_int,
        nargs=2,
        metavar=("H", "W"),
        help="model input size (default: ssd7 300 480, ssd300 300 300, ssd512 512 512, "
        "ssdlite 320 320)",
    )


def _add_dataset_args(parser, split_default: str, with_val: bool, purpose: str = "") -> None:
    group = parser.add_argument_group(
        "dataset (one of: a Pascal VOC folder with --data, a CSV with --csv, COCO JSON with "
        f"--coco){purpose}"
    )
    group.add_argument("--data", metavar="DIR", help="Pascal VOC layout folder")
    # Defaults are filled in later, so that a resumed run can tell given from default values.
    group.add_argument("--split", help=f"VOC image set name (default {split_default})")
    group.add_argument(
        "--classes",
        help="comma-separated class names, background first (default: DIR/classes.txt; for "
        "--csv required)",
    )
    group.add_argument("--csv", metavar="FILE", help="CSV labels, one box per row")
    group.add_argument("--csv-format", help=f"CSV column order (default {CSV_FORMAT})")
    group.add_argument("--coco", metavar="FILE", help="COCO JSON annotations")
    group.add_argument("--images", metavar="DIR", help="image folder (with --csv or --coco)")
    group.add_argument(
        "--bad-items",
        choices=("drop", "raise"),
        default="drop",
        help="an image that is missing or cannot be decoded (empty, truncated, not an image), "
        "a missing or malformed annotation: drop = leave it out and name it in the data report "
        "(default); raise = stop with an error naming it",
    )
    group.add_argument(
        "--unknown-classes",
        choices=("raise", "drop"),
        default="raise",
        help="objects whose class is not among the classes (VOC XML): raise = stop with an "
        "error naming them (default); drop = leave those objects out",
    )
    if with_val:
        group.add_argument("--val-split", help="VOC image set for the validation loss (e.g. val)")
        group.add_argument("--val-csv", metavar="FILE", help="validation CSV (with --csv)")
        group.add_argument("--val-coco", metavar="FILE", help="validation COCO JSON (with --coco)")
    parser.set_defaults(_split_default=split_default)


def _add_training_args(parser, fine_tuning: bool = False) -> None:
    """Batch, steps, optimizer, schedule, augmentation, seed: shared by train and prune."""
    parser.add_argument("--batch-size", type=_positive_int, help="default 16")
    parser.add_argument(
        "--steps-per-epoch", type=_positive_int, help="default: one pass over the data"
    )
    parser.add_argument("--optimizer", choices=("adam", "sgd"), help="default: the model's recipe")
    parser.add_argument("--lr", type=_positive_float, help="initial learning rate (default 1e-3)")
    parser.add_argument(
        "--lr-schedule",
        choices=("plateau", "ssd300", "constant"),
        help="plateau = ReduceLROnPlateau + EarlyStopping (ssd7 default); ssd300 = 1e-3 until "
        "epoch 80, 1e-4 until 100, then 1e-5 (ssd300/512 default)"
        + ("; fine-tuning default: constant" if fine_tuning else ""),
    )
    parser.add_argument(
        "--augmentation",
        choices=("constant", "ssd", "none"),
        help="constant = DataAugmentationConstantInputSize (ssd7 default), ssd = "
        "SSDDataAugmentation (ssd300/512 default)",
    )
    parser.add_argument(
        "--early-stopping-patience", type=_positive_int, help="with --lr-schedule plateau (10)"
    )
    parser.add_argument("--seed", type=int, help="seed of weights, batches, augmentation (0)")
    parser.add_argument("--workers", type=_positive_int, default=1, help="data loading threads")
    parser.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch")


def _add_runtime_arg(parser) -> None:
    parser.add_argument(
        "--runtime",
        choices=("auto", "keras", "litert", "onnxruntime", "openvino"),
        default="auto",
        help="for a run folder: auto = the export chosen by 'export --format best' (runtime.json "
        "in the run, when it belongs to the current model), else Keras; keras = the Keras "
        "model; litert/onnxruntime/openvino = that runtime's fastest verified export (default "
        "auto)",
    )
    parser.add_argument(
        "--precision",
        choices=("float32", "bf16"),
        default="float32",
        help="compute precision of the Keras model: bf16 runs it in Keras mixed_bfloat16 "
        "(SSD300/SSD512 about 1.9x faster on CPUs with AVX512-BF16 or AMX, SSD7/SSDLite about "
        "1.1x; scores differ slightly, so check the mAP); with --runtime auto it runs the "
        "Keras model (default float32)",
    )


def _backbone_weights(text: str) -> str:
    """``imagenet`` or an existing file (argparse type of --backbone-weights)."""
    if text == "imagenet" or Path(text).is_file():
        return text
    raise argparse.ArgumentTypeError(f"not 'imagenet' and no such file: {text}")


def _add_model_args(p, config_details: str) -> None:
    """--run (a run or an exported model), --config and --runtime of evaluate and predict."""
    p.add_argument(
        "--run",
        required=True,
        metavar="PATH",
        help="run folder, .keras file, or an exported .tflite/.onnx file or SavedModel folder",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help=f"the run's config.json{config_details} for an exported model (default: "
        "config.json beside it)",
    )
    _add_runtime_arg(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssd-keras",
        description="SSD object detection (SSD7, SSD300, SSD512) in Keras 3: train, evaluate, "
        "predict (images, videos, cameras), prune, export (SavedModel, TFLite, ONNX).",
    )
    parser.add_argument("--version", action="version", version=f"ssd-keras {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_train_parser(sub)
    _add_evaluate_parser(sub)
    _add_predict_parser(sub)
    _add_prune_parser(sub)
    _add_export_parser(sub)
    _add_inspect_and_anchors_parsers(sub)
    _add_demo_parser(sub)
    return parser


def _add_train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model",
        description="Train SSD7/SSD300/SSD512 with the original notebooks' recipes. The "
        "arguments are saved in OUT/train_args.json: 'train --out OUT --resume' continues an "
        "interrupted run with them ('--epochs N' extends it; other arguments given on resume "
        "must equal the saved ones).",
    )
    p.add_argument(
        "--model",
        choices=MODEL_NAMES,
        help="default ssd7; ssdlite = SSDLite on MobileNetV2 (320 320 by default)",
    )
    p.add_argument(
        "--backbone-weights",
        type=_backbone_weights,
        metavar="imagenet|FILE",
        help="initialise the backbone of a new run: imagenet (keras.applications downloads the "
        "ImageNet weights; needs internet) or a local weights file of the application "
        "(ssd300/512: keras.applications.VGG16(include_top=True), reduced to fc6/fc7 as the "
        "SSD authors did; ssdlite: MobileNetV2). Default: random",
    )
    _add_dataset_args(p, "train", with_val=True)
    _add_image_size_arg(p)
    p.add_argument(
        "--variances",
        type=_positive_float,
        nargs=4,
        metavar="V",
        help="box offset variances (cx cy w h) of the anchors, used by the model, the encoder "
        "and the decoder alike (default: ssd7 1 1 1 1 as its notebook, ssd300/512 0.1 0.1 0.2 "
        "0.2; 0.1 0.1 0.2 0.2 trains SSD7 much faster)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="run folder")
    p.add_argument("--epochs", type=_positive_int, help="total epochs (default 10)")
    _add_training_args(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out with its saved config.json and train_args.json",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument(
        "--distribute",
        choices=("none", "mirrored", "data-parallel"),
        default="none",
        help="mirrored = tf.distribute.MirroredStrategy over all GPUs (or --cpu-devices), "
        "TensorFlow backend; data-parallel = keras.distribution.DataParallel over all "
        "devices (or --cpu-devices), JAX backend: --batch-size must be a multiple of the "
        "device count, and images without boxes are kept (all background) so that batches stay "
        "full",
    )
    p.add_argument(
        "--cpu-devices",
        type=_positive_int,
        help="split the CPU into this many logical devices for --distribute (testing)",
    )
    p.add_argument(
        "--anchors",
        metavar="FILE",
        help="anchors.json from 'ssd-keras anchors' (scales and aspect ratios fitted to the "
        "data; recorded in the run's config.json); its image size is the default --image-size",
    )
    p.add_argument(
        "--loss",
        choices=("softmax", "focal"),
        help="softmax = the original SSD loss (hard negative mining, default); focal = focal "
        "loss on all non-neutral anchors (Lin et al. 2017)",
    )
    p.add_argument("--focal-gamma", type=_non_negative_float, help="focal loss gamma (2.0)")
    p.add_argument("--focal-alpha", type=_unit_float, help="focal loss object weight (0.25)")
    p.add_argument(
        "--mixed-precision",
        action="store_true",
        default=None,
        help="compute the layers in bfloat16 (CPU) or float16 with loss scaling (GPU); anchors, "
        "outputs, loss and decoding stay float32",
    )


def _add_evaluate_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="Pascal VOC mAP of a trained run or an exported model",
        description="VOC mAP (11-point and all-point) with a per-class table and PR plots.",
    )
    _add_model_args(p, "")
    _add_dataset_args(p, "test", with_val=False)
    p.add_argument("--batch-size", type=_positive_int, default=8)
    p.add_argument("--out", metavar="DIR", help="write metrics.json and plots here")
    p.add_argument("--iou", type=_probability, default=0.5, help="matching IoU (default 0.5)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _add_predict_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="detect objects in images, folders, videos or a camera",
        description="Draws detections on images (and folders of images), video files and "
        "camera frames. Videos and cameras give an annotated video with the FPS drawn on each "
        "frame; end-to-end and model-only FPS are printed. Works with training runs and with "
        "models exported by 'ssd-keras export' (.tflite, .onnx, SavedModel).",
    )
    _add_model_args(p, " (classes, input size, decoder settings)")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders, videos")
    p.add_argument("--video", action="append", default=[], metavar="FILE", help="a video file")
    p.add_argument(
        "--camera",
        type=_non_negative_int,
        metavar="N",
        help="camera index for cv2.VideoCapture (0 = first camera); Ctrl-C or --max-frames stops",
    )
    p.add_argument(
        "--max-frames", type=_positive_int, metavar="N", help="stop each video after N frames"
    )
    p.add_argument("--out", default="predictions", metavar="DIR", help="output folder")
    p.add_argument(
        "--confidence",
        type=_probability,
        default=0.5,
        help="minimum class confidence of a drawn detection (default 0.5)",
    )
    p.add_argument(
        "--nms-iou", type=_probability, default=0.45, help="NMS IoU threshold (default 0.45)"
    )
    p.add_argument(
        "--batch-size", type=_positive_int, default=8, help="for images (videos: 1; default 8)"
    )


def _add_prune_parser(sub) -> None:
    p = sub.add_parser(
        "prune",
        help="prune a trained run (magnitude or filters), optionally fine-tune",
        description="Prunes the model of a run into a new run folder: 'magnitude' zeroes the "
        "smallest weights of every Conv2D (same architecture, sparse kernels); 'filters' "
        "removes whole output channels (a narrower, faster model). With --fine-tune-epochs the "
        "pruned model is trained further with train's recipe (dataset options as train; "
        "default: the source run's training data from its train_args.json). Writes "
        "config.json, model.keras, pruning_report.json and the training files.",
    )
    p.add_argument("--run", required=True, metavar="PATH", help="run folder or .keras file")
    p.add_argument("--method", required=True, choices=("magnitude", "filters"))
    p.add_argument(
        "--sparsity",
        "--amount",
        dest="amount",
        required=True,
        type=_fraction,
        metavar="X",
        help="magnitude: fraction of weights set to zero; filters: fraction of the filters of "
        "each prunable layer removed",
    )
    p.add_argument(
        "--criterion",
        choices=("l1", "l2", "bn_gamma", "contribution"),
        help="filters: importance of a filter (default contribution when the model has "
        "BatchNormalization, as SSD7: the channel's spread from its BatchNormalization times "
        "the weights that read it; else l1)",
    )
    p.add_argument(
        "--schedule",
        choices=("polynomial", "constant"),
        default="polynomial",
        help="magnitude with fine-tuning: polynomial = sparsity rises from 0 over the first two "
        "thirds of the steps (PolynomialDecay); constant = full sparsity from the first step",
    )
    p.add_argument(
        "--fine-tune-epochs",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="epochs of training after pruning (default 0: none)",
    )
    _add_dataset_args(p, "train", with_val=True, purpose=" for --fine-tune-epochs")
    _add_training_args(p, fine_tuning=True)
    p.add_argument("--out", required=True, metavar="DIR", help="the new run folder")
    p.add_argument("--overwrite", action="store_true", help="replace a run in --out")


def _add_export_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a run to SavedModel, TFLite (float16/int8), ONNX or OpenVINO (bf16/int8), "
        "or pick the fastest runtime that agrees with Keras (--format best)",
        description="Exports the run's training-mode graph (raw predictions; predict and "
        "evaluate decode them in numpy) and copies config.json beside the file, so 'predict "
        "--run FILE' works. TensorFlow backend. int8 calibrates on images of a dataset "
        "(dataset options as train; default: the run's training data). --format best exports "
        "to every installed runtime and precision (into --out, default RUN/exports), keeps "
        "those whose detections on the dataset's images agree with the Keras model (same "
        "class, IoU >= 0.7 for confidence >= 0.5), times them and records the fastest in "
        "RUN/runtime.json, which 'predict'/'evaluate --runtime auto' then use.",
    )
    p.add_argument("--run", required=True, metavar="PATH", help="run folder or .keras file")
    p.add_argument(
        "--format", required=True, choices=("saved_model", "tflite", "onnx", "openvino", "best")
    )
    p.add_argument(
        "--quantization",
        choices=("float16", "dynamic", "int8", "bf16"),
        help="TFLite: float16 weights, dynamic-range int8 weights, or full-integer int8; "
        "OpenVINO: bf16 (inference precision) or int8 (NNCF)",
    )
    p.add_argument(
        "--io-dtype",
        choices=("float32", "uint8", "int8"),
        default="float32",
        help="int8 only: input/output dtype (default float32)",
    )
    p.add_argument(
        "--num-calibration",
        type=_positive_int,
        default=100,
        metavar="N",
        help="int8: calibration images (default 100)",
    )
    _add_dataset_args(p, "train", with_val=False, purpose=" for int8 calibration")
    p.add_argument(
        "--out",
        metavar="PATH",
        help="FILE.tflite, FILE.onnx, FILE.xml (openvino), or a folder for saved_model and best "
        "(best: default RUN/exports)",
    )
    p.add_argument(
        "--max-unmatched",
        type=_probability,
        default=0.0,
        metavar="FRACTION",
        help="best: the fraction of Keras' confident detections an export may leave without a "
        "partner and still agree (default 0; int8 exports rarely match every detection at "
        "the threshold's edge: 0.01 allows one in a hundred)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing files")


def _add_inspect_and_anchors_parsers(sub) -> None:
    for name, short, text in (
        (
            "inspect",
            "dataset statistics and anchor coverage (inspect.json, plots)",
            "Dataset statistics (boxes per class, box sizes and aspect ratios in the model's "
            "input pixels, images without boxes, bad items) and how the model's anchors cover "
            "the boxes (best IoU per box, fraction matched overall, per class and per size). "
            "Writes OUT/inspect.json, box_shapes.png, best_iou.png, coverage_by_size.png.",
        ),
        (
            "anchors",
            "fit anchor scales/aspect ratios to a dataset (anchors.json)",
            "Fits the anchor scales and aspect ratios of the model's predictor layers to the "
            "dataset's boxes (k-means on box shapes, then a search maximising the boxes matched "
            "at the encoder's IoU threshold), keeping the boxes per location. Never covers "
            "fewer boxes than the defaults, overall or per size. Writes --out (anchors.json) "
            "for 'train --anchors' and a coverage plot beside it.",
        ),
    ):
        p = sub.add_parser(name, help=short, description=text)
        _add_dataset_args(p, "train", with_val=False)
        p.add_argument("--model", choices=MODEL_NAMES, default="ssd7")
        _add_image_size_arg(p)
        p.add_argument(
            "--iou",
            type=_fraction,
            help="matching IoU (default: the encoder's pos_iou_threshold, 0.5)",
        )
        if name == "inspect":
            p.add_argument(
                "--anchors", metavar="FILE", help="inspect the anchors of an anchors.json"
            )
            p.add_argument("--out", default="inspect", metavar="DIR", help="output folder")
        else:
            p.add_argument("--out", required=True, metavar="FILE", help="anchors.json to write")
            p.add_argument("--seed", type=int, default=0, help="k-means seed (0)")
            p.add_argument("--overwrite", action="store_true", help="replace --out")


def _add_demo_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="synthetic data -> train SSD7 -> mAP, pictures, loss curve",
        description="Generates the synthetic shapes dataset, trains SSD7 on the CPU, evaluates "
        "its mAP and writes prediction pictures and the loss curve.",
    )
    p.add_argument("--out", default="runs/demo", metavar="DIR")
    p.add_argument("--minutes", type=_positive_float, default=6.0, help="training time budget")
    p.add_argument("--n-train", type=_positive_int, default=1000)
    p.add_argument("--n-test", type=_positive_int, default=100)
    p.add_argument("--seed", type=int, default=0)


# TensorFlow's C++ log lines: start-up notes (CPU instructions, oneDNN), op warnings such as the
# `[[{{node PyFunc}}]]` line after Ctrl-C. TF_CPP_MIN_LOG_LEVEL does not silence the absl ones.
_TF_NOISE = re.compile(
    rb"^(?:[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|To enable the following instructions:"
    rb"|\s*\[\[\{\{node \w+\}\}\]\])"
)


@contextlib.contextmanager
def _without_tensorflow_noise():
    """Leaves TensorFlow's C++ log lines out of stderr while a command runs (file descriptor 2
    goes through a pipe that a thread filters line by line); SSD_KERAS_DEBUG=1 keeps them."""
    if os.environ.get("SSD_KERAS_DEBUG"):
        yield
        return
    try:
        original = os.dup(2)
    except OSError:
        yield
        return
    read_end, write_end = os.pipe()
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)

    def write(data: bytes) -> None:
        while data:
            data = data[os.write(original, data) :]

    def pump() -> None:
        pending = b""
        try:
            while chunk := os.read(read_end, 65536):
                *lines, pending = (pending + chunk).split(b"\n")
                kept = b"".join(line + b"\n" for line in lines if not _TF_NOISE.match(line))
                # A partial line that cannot begin a log line (a progress bar) goes out at once.
                if pending and pending[:1] not in (b"I", b"W", b"T", b"[", b" "):
                    kept, pending = kept + pending, b""
                write(kept)
            write(pending)
        except OSError:
            pass
        finally:
            os.close(read_end)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's write end: the thread reads to its end
        thread.join(timeout=5)
        os.close(original)


def main(argv=None) -> int:
    """Entry point of ``python -m ssd_keras`` and the ``ssd-keras`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from data_generator.data_report import DataValidationError

    try:
        with _without_tensorflow_noise():
            return COMMANDS[args.command](args)
    except CLIError as error:
        parser.exit(EXIT_USAGE, f"ssd-keras {args.command}: error: {error}\n")
    except DataValidationError as error:
        if os.environ.get("SSD_KERAS_DEBUG"):
            raise
        parser.exit(EXIT_USAGE, f"ssd-keras {args.command}: error: {data_error_line(error)}\n")
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        if os.environ.get("SSD_KERAS_DEBUG"):
            raise
        parser.exit(EXIT_USAGE, f"ssd-keras {args.command}: error: {error}\n")
    except KeyboardInterrupt:
        print(
            "interrupted; a training run continues from its last epoch with --resume",
            file=sys.stderr,
        )
        return 130
    return 0
