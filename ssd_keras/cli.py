"""``python -m ssd_keras`` / ``ssd-keras``: train, evaluate, predict, prune, export, demo, inspect,
anchors.

Arguments are checked (files exist, numbers in range) before TensorFlow is imported, so mistakes
are reported in a second with the argument, the value and what was expected. Errors exit with
status 2 and one line on stderr (set ``SSD_KERAS_DEBUG=1`` for the traceback).

``train`` saves its arguments in ``RUN/train_args.json``; ``train --out RUN --resume`` alone
continues the run with them (``--epochs`` may be raised; any other argument given with a
different value than the saved one is an error).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import threading
from pathlib import Path

from ssd_keras import __version__
from ssd_keras.config import MODEL_NAMES

EXIT_USAGE = 2


class CLIError(Exception):
    """A user error: bad argument or missing file. Printed as one line, exit status 2."""


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


# Dataset options; saved in train_args.json and reused by prune/export when not given.
DATA_KEYS = (
    "data",
    "split",
    "classes",
    "csv",
    "csv_format",
    "coco",
    "images",
    "val_split",
    "val_csv",
    "val_coco",
)
_PATH_KEYS = ("data", "csv", "coco", "images", "val_csv", "val_coco")
CSV_FORMAT = "image_name,xmin,xmax,ymin,ymax,class_id"


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


def _backbone_weights(text: str) -> str:
    """``imagenet`` or an existing file (argparse type of --backbone-weights)."""
    if text == "imagenet" or Path(text).is_file():
        return text
    raise argparse.ArgumentTypeError(f"not 'imagenet' and no such file: {text}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssd-keras",
        description="SSD object detection (SSD7, SSD300, SSD512) in Keras 3: train, evaluate, "
        "predict (images, videos, cameras), prune, export (SavedModel, TFLite, ONNX).",
    )
    parser.add_argument("--version", action="version", version=f"ssd-keras {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

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

    p = sub.add_parser(
        "evaluate",
        help="Pascal VOC mAP of a trained run or an exported model",
        description="VOC mAP (11-point and all-point) with a per-class table and PR plots.",
    )
    p.add_argument(
        "--run",
        required=True,
        metavar="PATH",
        help="run folder, .keras file, or an exported .tflite/.onnx file or SavedModel folder",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="the run's config.json for an exported model (default: config.json beside it)",
    )
    _add_runtime_arg(p)
    _add_dataset_args(p, "test", with_val=False)
    p.add_argument("--batch-size", type=_positive_int, default=8)
    p.add_argument("--out", metavar="DIR", help="write metrics.json and plots here")
    p.add_argument("--iou", type=_probability, default=0.5, help="matching IoU (default 0.5)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser(
        "predict",
        help="detect objects in images, folders, videos or a camera",
        description="Draws detections on images (and folders of images), video files and "
        "camera frames. Videos and cameras give an annotated video with the FPS drawn on each "
        "frame; end-to-end and model-only FPS are printed. Works with training runs and with "
        "models exported by 'ssd-keras export' (.tflite, .onnx, SavedModel).",
    )
    p.add_argument(
        "--run",
        required=True,
        metavar="PATH",
        help="run folder, .keras file, or an exported .tflite/.onnx file or SavedModel folder",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="the run's config.json (classes, input size, decoder settings) for an exported "
        "model (default: config.json beside it)",
    )
    _add_runtime_arg(p)
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
    p.add_argument("--overwrite", action="store_true", help="replace existing files")

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
    return parser


# --------------------------------------------------------------------------- dataset arguments


def _fill_dataset_defaults(args) -> None:
    if getattr(args, "split", None) is None:
        args.split = args._split_default
    if getattr(args, "csv_format", None) is None:
        args.csv_format = CSV_FORMAT


def _dataset_given(args) -> bool:
    return any(getattr(args, k, None) for k in ("data", "csv", "coco"))


def _classes_arg(args) -> list[str] | None:
    if not args.classes:
        return None
    names = [c.strip() for c in args.classes.split(",") if c.strip()]
    if len(names) < 2:
        raise CLIError(f"--classes needs the background and at least one class, got {names!r}")
    return names


def _check_dataset_args(args, with_val: bool = False, classes_known: bool = False) -> str:
    """Which dataset kind was given; checks that the files exist. Returns 'voc'/'csv'/'coco'."""
    _fill_dataset_defaults(args)
    kinds = [k for k in ("data", "csv", "coco") if getattr(args, k)]
    if len(kinds) != 1:
        raise CLIError("give exactly one dataset: --data DIR, --csv FILE or --coco FILE")
    kind = kinds[0]
    if kind == "data":
        root = Path(args.data)
        if not root.is_dir():
            raise CLIError(f"--data: folder not found: {root}")
        splits = [args.split] + ([args.val_split] if with_val and args.val_split else [])
        for split in splits:
            path = root / "ImageSets" / "Main" / f"{split}.txt"
            if not path.is_file():
                raise CLIError(f"--data: image set file not found: {path}")
        if not classes_known and not args.classes and not (root / "classes.txt").is_file():
            raise CLIError(
                f"--classes is needed: {root / 'classes.txt'} does not exist (give "
                "background,name1,name2,...)"
            )
        return "voc"
    if not args.images:
        raise CLIError(f"--{kind} needs --images DIR")
    if not Path(args.images).is_dir():
        raise CLIError(f"--images: folder not found: {args.images}")
    files = [getattr(args, kind)]
    if with_val and getattr(args, f"val_{kind}", None):
        files.append(getattr(args, f"val_{kind}"))
    for name in files:
        if not Path(name).is_file():
            raise CLIError(f"--{kind}: file not found: {name}")
    if kind == "csv" and not args.classes:
        raise CLIError("--csv needs --classes background,name1,... (class ids index this list)")
    return kind


def _load_dataset(args, kind: str, which: str = "main", default_classes=None):
    """Returns ``(dataset, classes)``; ``which`` is 'main' or 'val'."""
    from ssd_keras import data

    classes = _classes_arg(args) or default_classes
    bad = getattr(args, "bad_items", "drop")
    if kind == "voc":
        if classes is None:
            classes = data.read_classes(args.data)
        split = args.split if which == "main" else args.val_split
        unknown = getattr(args, "unknown_classes", "raise")
        return data.load_voc(args.data, split, classes, bad_items=bad, unknown_classes=unknown), (
            classes
        )
    if kind == "csv":
        source = args.csv if which == "main" else args.val_csv
        fmt = [c.strip() for c in args.csv_format.split(",")]
        return data.load_csv(args.images, source, fmt, bad_items=bad), classes
    source = args.coco if which == "main" else args.val_coco
    dataset, coco_classes = data.load_coco(args.images, source, bad_items=bad)
    return dataset, classes or coco_classes


def _has_val(args, kind: str) -> bool:
    return bool(
        {
            "voc": getattr(args, "val_split", None),
            "csv": getattr(args, "val_csv", None),
            "coco": getattr(args, "val_coco", None),
        }.get(kind)
    )


def _dataset_from_run(args, run_path: Path, what: str) -> None:
    """Without dataset options, take the source run's training data from its train_args.json."""
    if _dataset_given(args):
        return
    saved = _read_train_args(run_path if run_path.is_dir() else run_path.parent)
    if saved is None or not any(saved.get(k) for k in ("data", "csv", "coco")):
        raise CLIError(
            f"{what} needs a dataset (--data DIR, --csv FILE or --coco FILE); {run_path} has no "
            f"{TRAIN_ARGS_FILE} naming its training data"
        )
    for key in DATA_KEYS:
        if getattr(args, key, None) is None and key in saved:
            setattr(args, key, saved[key])


# --------------------------------------------------------------------------- train arguments

TRAIN_ARGS_FILE = "train_args.json"
# What `train` saves and a resumed run reuses; value None = the model's recipe.
TRAIN_DEFAULTS = {
    "model": "ssd7",
    "image_size": None,
    "variances": None,
    "epochs": 10,
    "batch_size": 16,
    "steps_per_epoch": None,
    "optimizer": None,
    "lr": None,
    "lr_schedule": None,
    "augmentation": None,
    "early_stopping_patience": 10,
    "seed": 0,
    "backbone_weights": None,
    "anchors": None,
    "loss": "softmax",
    "focal_gamma": 2.0,
    "focal_alpha": 0.25,
    "mixed_precision": False,
    "data": None,
    "split": "train",
    "classes": None,
    "csv": None,
    "csv_format": CSV_FORMAT,
    "coco": None,
    "images": None,
    "val_split": None,
    "val_csv": None,
    "val_coco": None,
}
# Given on --resume with another value than the saved one, these win (and are saved).
RESUME_OVERRIDES = ("epochs",)


def _normalised(key: str, value):
    """The JSON form a train argument is saved in (absolute paths, lists, floats)."""
    if value is None:
        return None
    if key in _PATH_KEYS or key == "anchors":
        return str(Path(value).resolve())
    if key == "backbone_weights":
        return value if value == "imagenet" else str(Path(value).resolve())
    if key in ("image_size", "variances"):
        return [float(v) if key == "variances" else int(v) for v in value]
    if key == "lr":
        return float(value)
    return value


def _read_train_args(folder) -> dict | None:
    path = Path(folder) / TRAIN_ARGS_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CLIError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(saved, dict):
        raise CLIError(f"{path}: expected a JSON object, got {type(saved).__name__}")
    return saved


def _resolve_train_args(args, out: Path) -> dict:
    """Merges the given arguments with the defaults, or on --resume with the saved ones."""
    given = {key: _normalised(key, getattr(args, key)) for key in TRAIN_DEFAULTS}
    saved = _read_train_args(out) if args.resume else None
    if saved is None:
        merged = {k: (TRAIN_DEFAULTS[k] if v is None else v) for k, v in given.items()}
    else:
        conflicts = [
            f"--{key.replace('_', '-')} {_show(value)} (the run used {_show(saved.get(key))})"
            for key, value in given.items()
            if value is not None and value != saved.get(key) and key not in RESUME_OVERRIDES
        ]
        if conflicts:
            raise CLIError(
                f"--resume: {', '.join(conflicts)}; {out / TRAIN_ARGS_FILE} holds the run's "
                "arguments: drop these options (only --epochs may change on resume) or start a "
                "new run"
            )
        merged = {k: saved.get(k, TRAIN_DEFAULTS[k]) for k in TRAIN_DEFAULTS}
        merged.update({k: v for k, v in given.items() if v is not None})
    for key, value in merged.items():
        setattr(args, key, value)
    return merged


def _show(value) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _with_recipe(record: dict, model: str) -> dict:
    """``record`` with the recipe's optimizer/lr/schedule/augmentation filled in (as trained)."""
    from ssd_keras.train import recipe

    defaults = recipe(model)
    filled = dict(record)
    for key, recipe_key in (
        ("optimizer", "optimizer"),
        ("lr", "learning_rate"),
        ("lr_schedule", "lr_schedule"),
        ("augmentation", "augmentation"),
    ):
        if filled.get(key) is None:
            filled[key] = defaults[recipe_key]
    return filled


# --------------------------------------------------------------------------- commands


def _make_strategy(args):
    if args.distribute == "none":
        if args.cpu_devices:
            raise CLIError("--cpu-devices is only used with --distribute mirrored/data-parallel")
        return None
    import keras

    backend = keras.backend.backend()
    if args.distribute == "data-parallel":
        if backend != "jax":
            raise CLIError(
                f"--distribute data-parallel needs the JAX backend (KERAS_BACKEND=jax); "
                f"KERAS_BACKEND is {backend!r} (use --distribute mirrored with TensorFlow)"
            )
        try:
            from ssd_keras.distribute import data_parallel
        except ImportError:
            raise CLIError(
                "--distribute data-parallel: ssd_keras.distribute.data_parallel is not "
                "available in this installation"
            ) from None
        try:
            distribution = data_parallel(args.cpu_devices)
        except RuntimeError as error:
            raise CLIError(f"--distribute data-parallel: {error}") from None
        n_devices = int(distribution.device_mesh.devices.size)
        if args.batch_size % n_devices:
            raise CLIError(
                f"--batch-size {args.batch_size}: data-parallel training splits every batch "
                f"evenly over the {n_devices} devices; give a multiple of {n_devices}"
            )
        return distribution
    if backend != "tensorflow":
        raise CLIError(
            f"--distribute mirrored needs the TensorFlow backend (KERAS_BACKEND is {backend!r}; "
            "use --distribute data-parallel with JAX)"
        )
    from ssd_keras.distribute import mirrored_strategy

    return mirrored_strategy(args.cpu_devices)


def _training_kwargs(args) -> dict:
    """The `train` keyword arguments of the shared training options."""
    return {
        "batch_size": args.batch_size,
        "steps_per_epoch": args.steps_per_epoch,
        "optimizer": args.optimizer,
        "learning_rate": args.lr,
        "lr_schedule": args.lr_schedule,
        "augmentation": args.augmentation,
        "early_stopping_patience": args.early_stopping_patience,
        "seed": args.seed,
        "workers": args.workers,
        "tensorboard": args.tensorboard,
        "verbose": 2 if args.quiet else "auto",
    }


def _print_trained(result, epochs: int) -> None:
    history = result.history
    print(
        f"trained epochs {result.initial_epoch + 1}..{result.initial_epoch + len(history['loss'])}"
        f" of {epochs}; final loss {history['loss'][-1]:.4f}"
    )
    for name, path in result.paths.items():
        print(f"  {name:<11} {path}")


def _check_resume_epochs(out: Path, epochs: int) -> None:
    """A finished run (as many epochs done as asked) is refused before anything is loaded."""
    metadata = out / "backup" / "training_metadata.json"
    try:
        done = int(json.loads(metadata.read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if done >= epochs:
        raise CLIError(
            f"--resume: the run in {out} finished at epoch {done}; raise --epochs above {done} "
            "to continue it"
        )


def _data_error_line(error) -> str:
    """A `DataValidationError` as one line: the first bad item, and how many more."""
    unknown = getattr(error, "unknown_classes", None)
    if unknown:
        return (
            f"the dataset has {len(error.report)} object(s) of class(es) {', '.join(unknown)}, "
            f"which are not among the classes {', '.join(error.classes)} (first: "
            f"{error.report.issues[0].file}); use a dataset of these classes, or add "
            "--unknown-classes drop to leave those objects out"
        )
    issues = [i for i in error.report or () if i.action == "error"]
    if not issues:
        return " ".join(str(error).split())
    more = f" (and {len(issues) - 1} more bad item(s))" if len(issues) > 1 else ""
    return (
        f"{issues[0].file}: {issues[0].reason}{more}; fix or remove it, or add --bad-items drop "
        "to leave it out"
    )


def cmd_train(args) -> int:
    if args.resume and args.overwrite:
        raise CLIError("--resume and --overwrite exclude each other")
    out = Path(args.out)
    if args.resume and not (out / "backup" / "latest.weights.h5").is_file():
        raise CLIError(f"--resume: nothing to resume in {out} (no backup/latest.weights.h5)")
    from ssd_keras.config import check_image_size, run_has_trained

    if not args.resume and not args.overwrite and run_has_trained(out):
        raise CLIError(
            f"--out: {out} already holds a training run; add --resume to continue it or "
            "--overwrite to start over"
        )
    record = _resolve_train_args(args, out)
    if args.image_size is not None:
        try:
            check_image_size(args.model, args.image_size)
        except ValueError as error:
            raise CLIError(f"--image-size: {error}") from None
    if args.resume:
        _check_resume_epochs(out, args.epochs)
    if args.resume and not _dataset_given(args) and not (out / TRAIN_ARGS_FILE).is_file():
        raise CLIError(
            f"--resume: {out} has no {TRAIN_ARGS_FILE} (a run from an older version); give its "
            "dataset options again (--data DIR, --csv FILE or --coco FILE)"
        )
    kind = _check_dataset_args(args, with_val=True, classes_known=args.resume)
    strategy = _make_strategy(args)  # before anything else initialises TensorFlow

    from ssd_keras.config import RunConfig
    from ssd_keras.train import train

    saved = RunConfig.load(out) if args.resume else None
    default = None
    if saved is not None and kind == "voc" and not (Path(args.data) / "classes.txt").is_file():
        default = saved.classes  # a resumed run knows its classes
    train_data, classes = _load_dataset(args, kind, default_classes=default)
    val_data = None
    if _has_val(args, kind):
        val_data = _load_dataset(args, kind, "val", default_classes=default)[0]
    if saved is not None:
        config = saved
        if config.classes != classes:
            raise CLIError(
                f"--resume: the run in {out} was trained on classes {config.classes}, the "
                f"dataset gives {classes}"
            )
    else:
        overrides, image_size = {}, args.image_size
        if args.anchors:
            from ssd_keras.inspection import read_anchors

            anchors = read_anchors(args.anchors, model=args.model)
            if image_size is not None and tuple(image_size) != anchors["image_size"]:
                raise CLIError(
                    f"--anchors: {args.anchors} was fitted for image size "
                    f"{list(anchors['image_size'])}, --image-size is {list(image_size)}"
                )
            overrides, image_size = anchors["overrides"], anchors["image_size"]
        config = RunConfig.create(
            args.model, classes, image_size=image_size, variances=args.variances, **overrides
        )
    result = train(
        config,
        train_data,
        out,
        epochs=args.epochs,
        val_data=val_data,
        resume=args.resume,
        overwrite=args.overwrite,
        strategy=strategy,
        train_args=_with_recipe(record, config.model),
        backbone_weights=args.backbone_weights,
        loss=args.loss,
        focal_gamma=args.focal_gamma,
        focal_alpha=args.focal_alpha,
        mixed_precision=bool(args.mixed_precision),
        **_training_kwargs(args),
    )
    _print_trained(result, args.epochs)
    return 0


def _inspection_setup(args):
    """Checks and loads the dataset of inspect/anchors; returns ``(dataset, config)``."""
    kind = _check_dataset_args(args)
    from ssd_keras.config import RunConfig

    dataset, classes = _load_dataset(args, kind)
    overrides, image_size = {}, args.image_size
    if getattr(args, "anchors", None):
        from ssd_keras.inspection import read_anchors

        anchors = read_anchors(args.anchors, model=args.model)
        overrides, image_size = anchors["overrides"], image_size or anchors["image_size"]
    return dataset, RunConfig.create(args.model, classes, image_size=image_size, **overrides)


def cmd_inspect(args) -> int:
    from ssd_keras.inspection import inspect_dataset, summary_lines

    dataset, config = _inspection_setup(args)
    report = inspect_dataset(dataset, config, args.out, iou_threshold=args.iou)
    print("\n".join(summary_lines(report)))
    print(f"report and plots in {args.out}")
    return 0


def cmd_anchors(args) -> int:
    out = Path(args.out)
    if out.suffix != ".json":
        raise CLIError(f"--out: the anchors file is a .json file, got {out}")
    if out.exists() and not args.overwrite:
        raise CLIError(f"--out: {out} exists; add --overwrite to replace it")
    from ssd_keras.config import RunConfig
    from ssd_keras.inspection import (
        anchor_layers,
        fit_dataset_anchors,
        plot_box_shapes,
        plot_coverage_by_size,
        write_anchors,
    )

    dataset, config = _inspection_setup(args)
    predictor_sizes = config.predictor_sizes()
    fit, boxes = fit_dataset_anchors(
        dataset, config, args.iou, seed=args.seed, predictor_sizes=predictor_sizes
    )
    record = write_anchors(
        out, config, fit, boxes, data_source=str(args.data or args.csv or args.coco)
    )
    valid = (boxes.widths > 0) & (boxes.heights > 0)
    plot = out.with_name(out.stem + "_coverage.png")
    plot_coverage_by_size(
        {"default anchors": fit.start_coverage, "fitted anchors": fit.coverage},
        boxes.areas[valid],
        plot,
    )
    layers = anchor_layers(config, predictor_sizes)
    fitted_config = RunConfig.create(
        config.model,
        config.classes,
        image_size=config.image_size,
        scales=fit.scales,
        aspect_ratios_per_layer=fit.aspect_ratios_per_layer,
    )
    shapes_plot = out.with_name(out.stem + "_shapes.png")
    plot_box_shapes(
        boxes,
        layers,
        config,
        shapes_plot,
        fitted_layers=anchor_layers(fitted_config, predictor_sizes),
    )
    start, fitted = record["coverage_start"], record["coverage_fitted"]
    for name, row in (("default", start), ("fitted", fitted)):
        sizes = ", ".join(
            f"{size} {row['per_size'][size]['fraction_matched'] or 0:.3f}"
            for size in row["per_size"]
        )
        print(
            f"{name:>8}: {row['fraction_matched']:.3f} of boxes matched at IoU "
            f"{row['threshold']} (mean best IoU {row['mean_best_iou']:.3f}; {sizes})"
        )
    if not fit.improved:
        print("no anchors found that cover more boxes; the file holds the defaults")
    print(f"scales {fit.scales}, boxes per location {[layer.n_boxes for layer in layers]}")
    print(f"wrote {out}, {plot} and {shapes_plot}; train with --anchors {out}")
    return 0


def _runtime_path(args) -> Path:
    """The model file ``--run`` with ``--runtime`` runs (`ssd_keras.runtime.resolve_runtime`)."""
    from ssd_keras.runtime import resolve_runtime

    try:
        return resolve_runtime(args.run, args.runtime)
    except ValueError as error:
        raise CLIError(str(error)) from None


def cmd_evaluate(args) -> int:
    # Without --classes and classes.txt, the model's own class list is used.
    kind = _check_dataset_args(args, classes_known=True)
    if not Path(args.run).exists():
        raise CLIError(f"--run: not found: {args.run}")
    from ssd_keras.evaluate import evaluate, summary
    from ssd_keras.predict import load_model

    model, config = load_model(_runtime_path(args), args.config)
    default = None
    if kind == "voc" and not (Path(args.data) / "classes.txt").is_file():
        default = config.classes
    dataset, classes = _load_dataset(args, kind, default_classes=default)
    if classes != config.classes:
        raise CLIError(f"the dataset's classes {classes} differ from the model's {config.classes}")
    result = evaluate(
        model,
        config,
        dataset,
        batch_size=args.batch_size,
        out_dir=args.out,
        verbose=not args.json,
        matching_iou_threshold=args.iou,
    )
    if args.json:
        print(json.dumps(summary(result), indent=2))
    elif args.out:
        print(f"metrics and plots in {args.out}")
    return 0


def cmd_predict(args) -> int:
    if not Path(args.run).exists():
        raise CLIError(f"--run: not found: {args.run}")
    if args.config is not None and not Path(args.config).exists():
        raise CLIError(f"--config: not found: {args.config}")
    if not args.inputs and not args.video and args.camera is None:
        raise CLIError(
            "nothing to predict on: give image files/folders, --video FILE or --camera N"
        )
    for video in args.video:
        if not Path(video).is_file():
            raise CLIError(f"--video: file not found: {video}")
    from ssd_keras.predict import (
        Predictor,
        collect_inputs,
        load_model,
        predict_images,
        predict_video,
    )

    try:
        images, videos = collect_inputs(args.inputs)
    except (FileNotFoundError, ValueError) as error:
        raise CLIError(str(error)) from None
    videos += [Path(v) for v in args.video]
    model, config = load_model(_runtime_path(args), args.config)
    predictor = Predictor(model, config, args.confidence, args.nms_iou)
    out = Path(args.out)
    skipped = {}
    if images:
        skipped = predict_images(predictor, images, out, batch_size=args.batch_size)["skipped"]
    for video in videos:
        target = out / f"{video.stem}_pred{video.suffix}"
        predict_video(predictor, video, target, max_frames=args.max_frames)
    if args.camera is not None:
        target = out / f"camera{args.camera}_pred.mp4"
        predict_video(predictor, args.camera, target, max_frames=args.max_frames)
    if skipped:
        path, reason = next(iter(skipped.items()))
        more = f" and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        raise CLIError(
            f"skipped {path}: {reason}{more}; the other {len(images) - len(skipped)} image(s) "
            f"are done (pictures in {out})"
        )
    return 0


def _check_new_run_folder(out: Path, overwrite: bool) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        from ssd_keras.config import run_has_trained

        # A run folder without a model (its command stopped early) does not block a rerun.
        unfinished = (out / "config.json").is_file() and not run_has_trained(out)
        if not overwrite and not unfinished:
            raise CLIError(f"--out: {out} exists and is not empty; add --overwrite to replace it")
        if not (out / "config.json").is_file():
            # --overwrite deletes the folder: only ever a run folder.
            raise CLIError(
                f"--out: {out} is not a run folder (no config.json); --overwrite only replaces "
                "run folders, choose a new or empty folder"
            )
        import shutil

        shutil.rmtree(out)


# The training options a fine-tuning run takes over from the source run's train_args.json.
SOURCE_RECIPE_KEYS = (
    "batch_size",
    "steps_per_epoch",
    "optimizer",
    "lr",
    "augmentation",
    "early_stopping_patience",
    "seed",
)


def _source_validation_data(run: Path):
    """The source run's VOC validation split (from its train_args.json), or None."""
    saved = _read_train_args(run if run.is_dir() else run.parent) or {}
    if not (saved.get("data") and saved.get("val_split")):
        print("no validation split in the source run's train_args.json: mAP not compared")
        return None
    from ssd_keras import data
    from ssd_keras.config import RunConfig

    classes = RunConfig.load(run if run.is_dir() else run.parent).classes
    return data.load_voc(saved["data"], saved["val_split"], classes)


def cmd_prune(args) -> int:
    run = Path(args.run)
    if not run.exists():
        raise CLIError(f"--run: not found: {run}")
    out = Path(args.out)
    source_folder = run if run.is_dir() else run.parent
    if out.resolve() == source_folder.resolve():
        raise CLIError(f"--out: {out} is the source run's folder; choose a new folder")
    fine_tune = args.fine_tune_epochs > 0
    kind = None
    if fine_tune:
        _dataset_from_run(args, run, "--fine-tune-epochs")
        kind = _check_dataset_args(args, with_val=True, classes_known=True)
    elif _dataset_given(args):
        raise CLIError("dataset options are only used with --fine-tune-epochs N")
    if args.criterion and args.method != "filters":
        raise CLIError("--criterion is only used with --method filters")
    _check_new_run_folder(out, args.overwrite)

    from ssd_keras.optimize import prune_run

    data = {}
    if fine_tune:
        from ssd_keras.predict import load_run

        config = load_run(run)[1]
        data["train_data"], classes = _load_dataset(args, kind, default_classes=config.classes)
        if classes != config.classes:
            raise CLIError(
                f"the fine-tuning dataset's classes {classes} differ from the model's "
                f"{config.classes}"
            )
        if _has_val(args, kind):
            data["val_data"] = _load_dataset(args, kind, "val", default_classes=config.classes)[0]
        # Fine-tuning continues the source run's recipe unless an option says otherwise (the
        # anchors, variances and encoder thresholds come with its config.json); before, the
        # defaults replaced e.g. its batch size, optimizer, learning rate and augmentation.
        source_args = _read_train_args(run if run.is_dir() else run.parent) or {}
        for key in SOURCE_RECIPE_KEYS:
            if getattr(args, key, None) is None and source_args.get(key) is not None:
                setattr(args, key, source_args[key])
        record = {k: _normalised(k, getattr(args, k, None)) for k in TRAIN_DEFAULTS}
        record.update(
            model=config.model,
            image_size=list(config.image_size),
            variances=config.model_kwargs.get("variances"),
            epochs=args.fine_tune_epochs,
        )
        record = {k: (TRAIN_DEFAULTS[k] if v is None else v) for k, v in record.items()}
        if args.lr_schedule is None:
            record["lr_schedule"] = "constant"
        data["train_args"] = _with_recipe(record, config.model)
        for key in ("batch_size", "seed", "early_stopping_patience", "lr_schedule"):
            if getattr(args, key) is None:
                setattr(args, key, data["train_args"][key])
    report = prune_run(
        run,
        out,
        method=args.method,
        amount=args.amount,
        criterion=args.criterion,
        schedule=args.schedule,
        fine_tune_epochs=args.fine_tune_epochs,
        training_kwargs=_training_kwargs(args) if fine_tune else None,
        eval_data=_source_validation_data(run),
        verbose=True,
        **data,
    )
    from ssd_keras.optimize import format_pruning_report

    if fine_tune and args.method == "filters":
        report = {**report, "layers": None}  # the table came before the fine-tuning
    print(format_pruning_report(report))
    print(f"pruned run in {out} (report: {out / 'pruning_report.json'})")
    return 0


def cmd_export(args) -> int:
    run = Path(args.run)
    if not run.exists():
        raise CLIError(f"--run: not found: {run}")
    if args.format == "best":
        return _export_best(args, run)
    if args.out is None:
        raise CLIError(f"--out is required with --format {args.format}")
    out = Path(args.out)
    suffix = {"tflite": ".tflite", "onnx": ".onnx", "openvino": ".xml"}.get(args.format)
    if suffix and out.suffix != suffix:
        raise CLIError(f"--out: a {args.format} export is a {suffix} file, got {out}")
    if args.format == "saved_model" and out.suffix in (".tflite", ".onnx", ".xml", ".keras"):
        raise CLIError(f"--out: a saved_model export is a folder, got {out}")
    allowed = {"tflite": ("float16", "dynamic", "int8"), "openvino": ("bf16", "int8")}
    if args.quantization and args.quantization not in allowed.get(args.format, ()):
        formats = " or ".join(f for f, q in allowed.items() if args.quantization in q)
        raise CLIError(f"--quantization {args.quantization} needs --format {formats}")
    if args.io_dtype != "float32" and (args.quantization != "int8" or args.format != "tflite"):
        raise CLIError(f"--io-dtype {args.io_dtype} needs --format tflite --quantization int8")
    if out.exists() and not args.overwrite:
        raise CLIError(f"--out: {out} exists; add --overwrite to replace it")
    kind = None
    if args.quantization == "int8":
        _dataset_from_run(args, run, "--quantization int8 (calibration images)")
        kind = _check_dataset_args(args, classes_known=True)
    elif _dataset_given(args):
        raise CLIError("dataset options are only used with --quantization int8 (calibration)")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise CLIError(
            f"export needs the TensorFlow backend (KERAS_BACKEND=tensorflow), running "
            f"{keras.backend.backend()!r}"
        )
    from ssd_keras.optimize import export_run
    from ssd_keras.predict import load_run

    calibration = None
    if kind is not None:
        config = load_run(run)[1]
        calibration = _load_dataset(args, kind, default_classes=config.classes)[0]
    result = export_run(
        run,
        out,
        format=args.format,
        quantization=args.quantization,
        calibration_data=calibration,
        num_calibration_samples=args.num_calibration,
        io_dtype=args.io_dtype,
        overwrite=args.overwrite,
    )
    quantization = f" ({result['quantization']})" if result["quantization"] else ""
    print(
        f"exported {result['format']}{quantization} to {result['path']} "
        f"({result['size_bytes'] / 1e6:.2f} MB); run configuration: {result['config']}; "
        f"max |exported - Keras| on {result['n_check']} test images: {result['max_abs_diff']:.2e}"
    )
    return 0


def _export_best(args, run: Path) -> int:
    if args.quantization or args.io_dtype != "float32":
        raise CLIError("--format best tries every precision itself; drop --quantization/--io-dtype")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise CLIError(
            f"export needs the TensorFlow backend (KERAS_BACKEND=tensorflow), running "
            f"{keras.backend.backend()!r}"
        )
    # The run's training data (or the dataset given) calibrates int8 and checks agreement.
    _dataset_from_run(args, run, "--format best (calibration and check images)")
    kind = _check_dataset_args(args, classes_known=True)
    from ssd_keras.predict import load_run
    from ssd_keras.runtime import CHOICE_FILE, export_best

    config = load_run(run)[1]
    dataset = _load_dataset(args, kind, default_classes=config.classes)[0]
    folder = run if run.is_dir() else run.parent
    record = export_best(
        run, args.out, calibration_data=dataset, num_calibration_samples=args.num_calibration
    )
    print(f"Keras: {record['keras_median_ms']:.1f} ms per image")
    for row in record["candidates"]:
        if "error" in row:
            print(f"{row['runtime']:<12} {row['precision']:<8} not exported: {row['error']}")
            continue
        verdict = "agrees" if row["agree"] else f"{row['unmatched']} unmatched detection(s)"
        print(f"{row['runtime']:<12} {row['precision']:<8} {row['median_ms']:8.1f} ms  {verdict}")
    chosen = record["chosen"]
    if chosen is None:
        print(
            f"no export is faster than Keras and agrees with it; recorded in {folder / CHOICE_FILE}"
        )
    else:
        print(
            f"chosen: {chosen['runtime']} {chosen['precision']} ({folder / chosen['path']}); "
            f"recorded in {folder / CHOICE_FILE}"
        )
    return 0


def cmd_demo(args) -> int:
    from ssd_keras.demo import run_demo

    run_demo(
        args.out, minutes=args.minutes, n_train=args.n_train, n_test=args.n_test, seed=args.seed
    )
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "prune": cmd_prune,
    "export": cmd_export,
    "demo": cmd_demo,
    "inspect": cmd_inspect,
    "anchors": cmd_anchors,
}


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
        parser.exit(EXIT_USAGE, f"ssd-keras {args.command}: error: {_data_error_line(error)}\n")
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
