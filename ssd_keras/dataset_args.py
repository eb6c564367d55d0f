"""The commands' dataset options (``--data``/``--csv``/``--coco`` and friends).

`check_dataset_args` checks them (one dataset, files and folders exist, classes known) before
TensorFlow is imported; `load_dataset` then reads the dataset with `ssd_keras.data`. The options
are defined in `ssd_keras.cli` (`_add_dataset_args`); their defaults are filled in here, late, so
that a resumed run can tell given from default values.
"""

from __future__ import annotations

from pathlib import Path

from ssd_keras.cli_errors import CLIError

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
PATH_KEYS = ("data", "csv", "coco", "images", "val_csv", "val_coco")
CSV_FORMAT = "image_name,xmin,xmax,ymin,ymax,class_id"


def fill_dataset_defaults(args) -> None:
    if getattr(args, "split", None) is None:
        args.split = args._split_default
    if getattr(args, "csv_format", None) is None:
        args.csv_format = CSV_FORMAT


def dataset_given(args) -> bool:
    return any(getattr(args, k, None) for k in ("data", "csv", "coco"))


def classes_arg(args) -> list[str] | None:
    if not args.classes:
        return None
    names = [c.strip() for c in args.classes.split(",") if c.strip()]
    if len(names) < 2:
        raise CLIError(f"--classes needs the background and at least one class, got {names!r}")
    return names


def check_dataset_args(args, with_val: bool = False, classes_known: bool = False) -> str:
    """Which dataset kind was given; checks that the files exist. Returns 'voc'/'csv'/'coco'."""
    fill_dataset_defaults(args)
    kinds = [k for k in ("data", "csv", "coco") if getattr(args, k)]
    if len(kinds) != 1:
        raise CLIError("give exactly one dataset: --data DIR, --csv FILE or --coco FILE")
    kind = kinds[0]
    if kind == "data":
        _check_voc_args(args, with_val, classes_known)
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


def _check_voc_args(args, with_val: bool, classes_known: bool) -> None:
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


def load_dataset(args, kind: str, which: str = "main", default_classes=None):
    """Returns ``(dataset, classes)``; ``which`` is 'main' or 'val'."""
    from ssd_keras import data

    classes = classes_arg(args) or default_classes
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


def has_val(args, kind: str) -> bool:
    return bool(
        {
            "voc": getattr(args, "val_split", None),
            "csv": getattr(args, "val_csv", None),
            "coco": getattr(args, "val_coco", None),
        }.get(kind)
    )
