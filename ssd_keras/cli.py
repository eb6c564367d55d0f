"""``python -m ssd_keras`` / ``ssd-keras``: train, evaluate, predict, demo.

Arguments are checked (files exist, numbers in range) before TensorFlow is imported, so mistakes
are reported in a second with the argument, the value and what was expected. Errors exit with
status 2 and one line on stderr (set ``SSD_KERAS_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ssd_keras import __version__

EXIT_USAGE = 2


class CLIError(Exception):
    """A user error: bad argument or missing file. Printed as one line, exit status 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def _add_dataset_args(parser, split_default: str, with_val: bool) -> None:
    group = parser.add_argument_group(
        "dataset (one of: a Pascal VOC folder with --data, a CSV with --csv, COCO JSON with --coco)"
    )
    group.add_argument("--data", metavar="DIR", help="Pascal VOC layout folder")
    group.add_argument(
        "--split", default=split_default, help=f"VOC image set name (default {split_default})"
    )
    group.add_argument(
        "--classes",
        help="comma-separated class names, background first (default: DIR/classes.txt; for "
        "--csv required)",
    )
    group.add_argument("--csv", metavar="FILE", help="CSV labels, one box per row")
    group.add_argument(
        "--csv-format",
        default="image_name,xmin,xmax,ymin,ymax,class_id",
        help="CSV column order (default image_name,xmin,xmax,ymin,ymax,class_id)",
    )
    group.add_argument("--coco", metavar="FILE", help="COCO JSON annotations")
    group.add_argument("--images", metavar="DIR", help="image folder (with --csv or --coco)")
    if with_val:
        group.add_argument("--val-split", help="VOC image set for the validation loss (e.g. val)")
        group.add_argument("--val-csv", metavar="FILE", help="validation CSV (with --csv)")
        group.add_argument("--val-coco", metavar="FILE", help="validation COCO JSON (with --coco)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssd-keras",
        description="SSD object detection (SSD7, SSD300, SSD512) in Keras 3.",
    )
    parser.add_argument("--version", action="version", version=f"ssd-keras {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "train",
        help="train a model",
        description="Train SSD7/SSD300/SSD512 with the original notebooks' recipes.",
    )
    p.add_argument("--model", choices=("ssd7", "ssd300", "ssd512"), default="ssd7")
    _add_dataset_args(p, "train", with_val=True)
    p.add_argument(
        "--image-size",
        type=_positive_int,
        nargs=2,
        metavar=("H", "W"),
        help="model input size (default: ssd7 300 480, ssd300 300 300, ssd512 512 512)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="run folder")
    p.add_argument("--epochs", type=_positive_int, default=10)
    p.add_argument("--batch-size", type=_positive_int, default=16)
    p.add_argument("--steps-per-epoch", type=_positive_int, help="default: one pass over the data")
    p.add_argument("--optimizer", choices=("adam", "sgd"), help="default: the model's recipe")
    p.add_argument("--lr", type=_positive_float, help="initial learning rate (default 1e-3)")
    p.add_argument(
        "--lr-schedule",
        choices=("plateau", "ssd300", "constant"),
        help="plateau = ReduceLROnPlateau + EarlyStopping (ssd7 default); ssd300 = 1e-3 until "
        "epoch 80, 1e-4 until 100, then 1e-5 (ssd300/512 default)",
    )
    p.add_argument(
        "--augmentation",
        choices=("constant", "ssd", "none"),
        help="constant = DataAugmentationConstantInputSize (ssd7 default), ssd = "
        "SSDDataAugmentation (ssd300/512 default)",
    )
    p.add_argument("--early-stopping-patience", type=_positive_int, default=10)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (its config.json wins over --model/--image-size)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=_positive_int, default=1, help="data loading threads")
    p.add_argument(
        "--distribute",
        choices=("none", "mirrored"),
        default="none",
        help="mirrored = tf.distribute.MirroredStrategy over all GPUs (or --cpu-devices)",
    )
    p.add_argument(
        "--cpu-devices",
        type=_positive_int,
        help="split the CPU into this many logical devices for --distribute mirrored (testing)",
    )
    p.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs")
    p.add_argument("--quiet", action="store_true", help="one line per epoch")

    p = sub.add_parser(
        "evaluate",
        help="Pascal VOC mAP of a trained run",
        description="VOC mAP (11-point and all-point) with a per-class table and PR plots.",
    )
    p.add_argument("--run", required=True, metavar="PATH", help="run folder or .keras file")
    _add_dataset_args(p, "test", with_val=False)
    p.add_argument("--batch-size", type=_positive_int, default=8)
    p.add_argument("--out", metavar="DIR", help="write metrics.json and plots here")
    p.add_argument("--iou", type=_probability, default=0.5, help="matching IoU (default 0.5)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser(
        "predict",
        help="detect objects in images, folders or videos",
        description="Draws detections on images (and folders of images) and video files.",
    )
    p.add_argument("--run", required=True, metavar="PATH", help="run folder or .keras file")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, videos")
    p.add_argument("--out", default="predictions", metavar="DIR", help="output folder")
    p.add_argument("--confidence", type=_probability, default=0.5)
    p.add_argument("--nms-iou", type=_probability, default=0.45)
    p.add_argument("--batch-size", type=_positive_int, default=8, help="for images")

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


def _classes_arg(args) -> list[str] | None:
    if not args.classes:
        return None
    names = [c.strip() for c in args.classes.split(",") if c.strip()]
    if len(names) < 2:
        raise CLIError(f"--classes needs the background and at least one class, got {names!r}")
    return names


def _check_dataset_args(args, with_val: bool = False, classes_known: bool = False) -> str:
    """Which dataset kind was given; checks that the files exist. Returns 'voc'/'csv'/'coco'."""
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
    if kind == "voc":
        if classes is None:
            classes = data.read_classes(args.data)
        split = args.split if which == "main" else args.val_split
        return data.load_voc(args.data, split, classes), classes
    if kind == "csv":
        source = args.csv if which == "main" else args.val_csv
        fmt = [c.strip() for c in args.csv_format.split(",")]
        return data.load_csv(args.images, source, fmt), classes
    source = args.coco if which == "main" else args.val_coco
    dataset, coco_classes = data.load_coco(args.images, source)
    return dataset, classes or coco_classes


def _has_val(args, kind: str) -> bool:
    return bool({"voc": args.val_split, "csv": args.val_csv, "coco": args.val_coco}.get(kind))


# --------------------------------------------------------------------------- commands


def _make_strategy(args):
    if args.distribute == "none":
        if args.cpu_devices:
            raise CLIError("--cpu-devices is only used with --distribute mirrored")
        return None
    import keras

    if keras.backend.backend() != "tensorflow":
        raise CLIError(
            f"--distribute mirrored needs the TensorFlow backend (KERAS_BACKEND is "
            f"{keras.backend.backend()!r})"
        )
    from ssd_keras.distribute import mirrored_strategy

    return mirrored_strategy(args.cpu_devices)


def cmd_train(args) -> int:
    if args.resume and args.overwrite:
        raise CLIError("--resume and --overwrite exclude each other")
    kind = _check_dataset_args(args, with_val=True, classes_known=args.resume)
    out = Path(args.out)
    if args.resume and not (out / "backup" / "latest.weights.h5").is_file():
        raise CLIError(f"--resume: nothing to resume in {out} (no backup/latest.weights.h5)")
    if not args.resume and not args.overwrite and (out / "config.json").exists():
        raise CLIError(
            f"--out: {out} already holds a training run; add --resume to continue it or "
            "--overwrite to start over"
        )
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
        config = RunConfig.create(args.model, classes, image_size=args.image_size)
    result = train(
        config,
        train_data,
        out,
        epochs=args.epochs,
        val_data=val_data,
        batch_size=args.batch_size,
        steps_per_epoch=args.steps_per_epoch,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        lr_schedule=args.lr_schedule,
        augmentation=args.augmentation,
        early_stopping_patience=args.early_stopping_patience,
        resume=args.resume,
        overwrite=args.overwrite,
        seed=args.seed,
        strategy=strategy,
        workers=args.workers,
        tensorboard=args.tensorboard,
        verbose=2 if args.quiet else "auto",
    )
    history = result.history
    print(
        f"trained epochs {result.initial_epoch + 1}..{result.initial_epoch + len(history['loss'])}"
        f" of {args.epochs}; final loss {history['loss'][-1]:.4f}"
    )
    for name, path in result.paths.items():
        print(f"  {name:<11} {path}")
    return 0


def cmd_evaluate(args) -> int:
    # Without --classes and classes.txt, the model's own class list is used.
    kind = _check_dataset_args(args, classes_known=True)
    if not Path(args.run).exists():
        raise CLIError(f"--run: not found: {args.run}")
    from ssd_keras.evaluate import evaluate, summary
    from ssd_keras.predict import load_run

    model, config = load_run(args.run)
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
    from ssd_keras.predict import Predictor, collect_inputs, load_run, predict_images, predict_video

    try:
        images, videos = collect_inputs(args.inputs)
    except (FileNotFoundError, ValueError) as error:
        raise CLIError(str(error)) from None
    model, config = load_run(args.run)
    predictor = Predictor(model, config, args.confidence, args.nms_iou)
    out = Path(args.out)
    if images:
        predict_images(predictor, images, out, batch_size=args.batch_size)
    for video in videos:
        predict_video(predictor, video, out / f"{video.stem}_pred{video.suffix}")
    return 0


def cmd_demo(args) -> int:
    from ssd_keras.demo import run_demo

    run_demo(
        args.out, minutes=args.minutes, n_train=args.n_train, n_test=args.n_test, seed=args.seed
    )
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "demo": cmd_demo}


def main(argv=None) -> int:
    """Entry point of ``python -m ssd_keras`` and the ``ssd-keras`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CLIError as error:
        parser.exit(EXIT_USAGE, f"ssd-keras {args.command}: error: {error}\n")
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
