"""The dataset parsers of `DataGenerator`: Pascal VOC XML, CSV and MS COCO JSON.

`parse_xml`, `parse_csv` and `parse_json` are `DataGenerator`'s methods of the same names (the
class binds them, so ``dataset.parse_xml(...)`` is ``parse_xml(dataset, ...)``), with the
original's positional parameters and keyword names. They fill the dataset's ``filenames``,
``labels``, ``image_ids`` and ``eval_neutral`` lists; the policy options (which boxes and items
to keep, drop, fix or reject) travel through the steps as one `ParseOptions`.

Everything fixed or dropped goes to one `DataReport` (``dataset.data_report``), emitted as one
warning at the end of the parse.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from data_generator.data_report import DataReport, DataValidationError
from data_generator.image_io import ImageReadError, read_image
from data_generator.labels import DEFAULT_LABELS_OUTPUT_FORMAT, labels_array, parse_number
from data_generator.voc_xml import VOC_CLASSES, VocObject, VocXmlError, read_voc_xml

BAD_ITEM_POLICIES = ("drop", "raise")
OUT_OF_IMAGE_POLICIES = ("clip", "drop", "keep")
DEGENERATE_POLICIES = ("keep", "drop")
# What happens to a degenerate box kept in the labels (degenerate_boxes='keep').
DEGENERATE_KEPT = (
    "kept in the labels; generate() removes it from every batch, so training and evaluation "
    "never see it"
)
UNKNOWN_CLASS_POLICIES = ("raise", "drop")
CROWD_POLICIES = ("eval_neutral", "keep", "drop")


def check_choice(name: str, value, choices: Sequence) -> None:
    """Raises a ValueError naming ``name`` when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


@dataclass(frozen=True)
class ParseOptions:
    """What a parser keeps, drops, fixes or rejects (the parsers' keyword arguments)."""

    include_classes: str | Sequence[int] = "all"
    exclude_truncated: bool = False
    exclude_difficult: bool = False
    bad_items: str = "drop"
    out_of_image_boxes: str = "clip"
    degenerate_boxes: str = "keep"
    unknown_classes: str = "raise"
    crowd_boxes: str = "eval_neutral"
    check_images: bool = False

    def __post_init__(self):
        check_choice("crowd_boxes", self.crowd_boxes, CROWD_POLICIES)
        check_choice("bad_items", self.bad_items, BAD_ITEM_POLICIES)
        check_choice("out_of_image_boxes", self.out_of_image_boxes, OUT_OF_IMAGE_POLICIES)
        check_choice("degenerate_boxes", self.degenerate_boxes, DEGENERATE_POLICIES)
        check_choice("unknown_classes", self.unknown_classes, UNKNOWN_CLASS_POLICIES)

    @property
    def image_action(self) -> str:
        """The report's action for a bad image or annotation file."""
        return "dropped image" if self.bad_items == "drop" else "error"

    def includes(self, class_id) -> bool:
        return self.include_classes == "all" or class_id in self.include_classes


# ---------------------------------------------------------------------- shared steps


def _start_parse(dataset, include_classes, verbose: bool) -> None:
    """Forgets the dataset's previous source (HDF5 file, images in memory)."""
    dataset.include_classes = include_classes
    dataset.verbose = verbose
    dataset.hdf5_dataset_path = None
    dataset._hdf5 = None
    dataset.images = None


def _check_image_file(filename, report: DataReport, action: str) -> bool:
    if not os.path.isfile(filename):
        report.add(filename, "image file not found", action)
        return False
    return True


def _find_undecodable_images(dataset, report: DataReport, action: str, skip) -> list[int]:
    """Decodes every image file (in threads: OpenCV releases the GIL) and reports the ones
    that are not images (empty, truncated, another kind of file); returns their indices."""
    from concurrent.futures import ThreadPoolExecutor

    skip = set(skip)
    indices = [i for i in range(len(dataset.filenames)) if i not in skip]

    def problem(i):
        try:
            read_image(dataset.filenames[i])
        except ImageReadError as error:
            return str(error).removeprefix(f"{dataset.filenames[i]}: ")
        return None

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        problems = list(pool.map(problem, indices))
    failed = []
    for i, reason in zip(indices, problems):
        if reason is not None:
            failed.append(i)
            report.add(dataset.filenames[i], f"unreadable image ({reason})", action)
    return failed


def _finish_parse(dataset, report: DataReport, options: ParseOptions, missing) -> None:
    """Checks/loads the images, drops or raises for bad items, emits the one summary."""
    dataset._set_size(len(dataset.filenames))
    missing = set(missing)
    if dataset.load_images_into_memory:
        missing |= set(dataset._load_images_into_memory(report, options.bad_items))
    elif options.check_images:
        missing |= set(_find_undecodable_images(dataset, report, options.image_action, missing))
    dataset.data_report = report
    if options.bad_items == "raise":
        report.raise_errors()
    dataset._drop_items(sorted(missing))
    report.emit(stacklevel=4)  # points at the caller of the parser


def _clip_to_image(coords, size, description, source, report, policy):
    """The box after the ``out_of_image_boxes`` policy (None: dropped). ``size`` is
    ``(width, height)``, or None when unknown (the box is then kept as it is)."""
    if policy == "keep" or size is None:
        return coords
    width, height = size
    clipped = {
        "xmin": min(max(coords["xmin"], 0), width),
        "xmax": min(max(coords["xmax"], 0), width),
        "ymin": min(max(coords["ymin"], 0), height),
        "ymax": min(max(coords["ymax"], 0), height),
    }
    if clipped == coords:
        return coords
    reason = f"{description} outside the image {width}x{height}"
    if policy == "drop":
        report.add(source, reason, "dropped box")
        return None
    report.add(source, reason, "clipped box")
    return clipped


def _keeps_degenerate(values, description, source, report, policy) -> bool:
    """False when a zero-size or inverted box is dropped (``degenerate_boxes='drop'``);
    a degenerate box is reported either way."""
    if values["xmax"] > values["xmin"] and values["ymax"] > values["ymin"]:
        return True
    if policy == "drop":
        report.add(source, description, "dropped box")
        return False
    report.add(source, f"{description} ({DEGENERATE_KEPT})", "kept")
    return True


def _row(class_id, coords, columns) -> list:
    values = {"class_id": class_id, **coords}
    return [values[key] for key in columns]


# ---------------------------------------------------------------------- Pascal VOC XML


def parse_xml(
    dataset,
    images_dirs: Sequence[str],
    image_set_filenames: Sequence[str],
    annotations_dirs: Sequence[str] | None = (),
    classes: Sequence[str] = VOC_CLASSES,
    include_classes="all",
    exclude_truncated: bool = False,
    exclude_difficult: bool = False,
    ret: bool = False,
    verbose: bool = True,
    *,
    bad_items: str = "drop",
    out_of_image_boxes: str = "clip",
    degenerate_boxes: str = "keep",
    unknown_classes: str = "raise",
    check_images: bool = False,
):
    """Parses a Pascal VOC style dataset (XML annotations).

    For each images dir / image set file / annotations dir triple, every id in the image set
    file (one per line) gives the image ``<images_dir>/<id>.jpg`` and the annotation
    ``<annotations_dir>/<id>.xml``. Each ``<object>`` gives a label row (XML order);
    ``<difficult>1`` makes the box evaluation-neutral. Without annotations dirs, only file
    names and ids are loaded (``labels`` and ``eval_neutral`` are None).

    Args:
        images_dirs: the image directories, one per dataset.
        image_set_filenames: the image set files (ids, one per line), one per dataset.
        annotations_dirs: the XML directories, one per dataset, or empty for no labels.
        classes: the class names; a class id is the index of the name in this list (so
            index 0 is normally ``'background'``).
        include_classes: ``'all'`` or a list of class ids to keep; images keep their place
            with the other boxes removed.
        exclude_truncated: skip objects with ``<truncated>1``.
        exclude_difficult: skip objects with ``<difficult>1``.
        ret: return ``(images, filenames, labels, image_ids, eval_neutral)``.
        verbose: show a progress bar.
        bad_items: ``'drop'`` (default): an image whose file is missing (or unreadable, with
            ``check_images``), or whose annotation is missing or not valid XML, is dropped
            and reported; ``'raise'``: one `DataValidationError` listing all of them.
        out_of_image_boxes: a box reaching outside ``[0, width] x [0, height]`` (the size
            from ``<size>``): ``'clip'`` it (default), ``'drop'`` it, or ``'keep'`` it as is.
        degenerate_boxes: a zero-size or inverted box (``xmax <= xmin`` or
            ``ymax <= ymin``): ``'keep'`` it verbatim (default, like the original;
            ``generate`` removes such boxes) or ``'drop'`` it. Reported either way.
        unknown_classes: an object whose name is not in ``classes``: ``'raise'`` (default,
            like the original, but after the whole parse, with one ValueError listing every
            file and name) or ``'drop'`` the box.
        check_images: decode every image to check that it is readable (slower; a
            truncated JPEG, an empty file or a text file named ``.jpg`` is then a bad item
            like a missing one); without it only the file's existence is checked.

    ``<truncated>``/``<difficult>`` are read as the original read them (``int(text)``,
    non-zero = set); a missing or empty tag counts as 0, and so does a value that is not a
    number (reported). A missing or zero ``<size>`` is fixed by reading the image's size
    (when a box check needs it). An object without a valid ``<bndbox>`` is dropped.
    Everything fixed or dropped is listed in ``self.data_report`` and summarised in one
    `DataWarning`. The file reading is `data_generator.voc_xml.read_voc_xml`.

    Returns:
        With ``ret=True``: ``(images, filenames, labels, image_ids, eval_neutral)``.

    Raises:
        ValueError (a `DataValidationError`): for unknown classes with
            ``unknown_classes='raise'``, and bad items with ``bad_items='raise'``.
    """
    options = ParseOptions(
        include_classes=include_classes,
        exclude_truncated=exclude_truncated,
        exclude_difficult=exclude_difficult,
        bad_items=bad_items,
        out_of_image_boxes=out_of_image_boxes,
        degenerate_boxes=degenerate_boxes,
        unknown_classes=unknown_classes,
        check_images=check_images,
    )
    has_annotations = bool(annotations_dirs)
    _check_same_length(("images_dirs", images_dirs), ("image_set_filenames", image_set_filenames))
    if has_annotations:
        _check_same_length(("annotations_dirs", annotations_dirs), ("images_dirs", images_dirs))
    _start_parse(dataset, include_classes, verbose)
    dataset.images_dirs = list(images_dirs)
    dataset.annotations_dirs = list(annotations_dirs) if has_annotations else []
    dataset.image_set_filenames = list(image_set_filenames)
    dataset.classes = list(classes)
    dataset.filenames, dataset.image_ids = [], []
    dataset.labels = [] if has_annotations else None
    dataset.eval_neutral = [] if has_annotations else None

    reader = _VocReader(dataset.classes, dataset.labels_output_format, options)
    bad = []  # indices of items to drop
    for n, (images_dir, set_file) in enumerate(zip(images_dirs, image_set_filenames)):
        annotations_dir = dataset.annotations_dirs[n] if has_annotations else None
        with open(set_file) as f:
            image_ids = [line.strip() for line in f if line.strip()]
        description = f"Parsing {os.path.basename(os.fspath(set_file))}"
        for image_id in tqdm(image_ids, desc=description, disable=not verbose):
            bad += _add_voc_item(dataset, reader, images_dir, annotations_dir, image_id)
    reader.raise_or_report_unknown()
    _finish_parse(dataset, reader.report, options, bad)
    if ret:
        return (
            dataset.images,
            dataset.filenames,
            dataset.labels,
            dataset.image_ids,
            dataset.eval_neutral,
        )
    return None


def _check_same_length(*named: tuple[str, Sequence]) -> None:
    (first, values), *others = named
    for name, other in others:
        if len(other) != len(values):
            raise ValueError(
                f"{first} ({len(values)}) and {name} ({len(other)}) must have the same length"
            )


def _add_voc_item(dataset, reader, images_dir, annotations_dir, image_id) -> list[int]:
    """Appends one image (and its annotation); returns its index if it is a bad item."""
    index = len(dataset.filenames)
    filename = os.path.join(images_dir, f"{image_id}.jpg")
    dataset.filenames.append(filename)
    dataset.image_ids.append(image_id)
    image_ok = _check_image_file(filename, reader.report, reader.options.image_action)
    parsed = None
    if annotations_dir is not None:
        xml_path = os.path.join(annotations_dir, f"{image_id}.xml")
        parsed = reader.read(xml_path, filename, image_ok)
        labels, neutral = parsed if parsed is not None else (labels_array([]), [])
        dataset.labels.append(labels)
        dataset.eval_neutral.append(neutral)
    if not image_ok or (annotations_dir is not None and parsed is None):
        return [index]
    return []


class _VocReader:
    """Turns annotation files into label rows under one `ParseOptions`; collects the report
    and the objects of unknown classes over the whole parse."""

    def __init__(self, classes: Sequence[str], columns: Sequence[str], options: ParseOptions):
        self.class_index = {name: i for i, name in enumerate(classes)}
        self.classes = list(classes)
        self.columns = columns
        self.options = options
        self.report = DataReport("parse_xml")
        self.unknown = DataReport("parse_xml")
        self.unknown_names: set[str] = set()

    def read(self, xml_path: str, image_filename: str, image_ok: bool):
        """Labels and eval_neutral flags of one XML file, or None when the file is unusable."""
        try:
            annotation = read_voc_xml(xml_path)
        except OSError as error:
            action = self.options.image_action
            self.report.add(xml_path, f"annotation file not readable ({error})", action)
            return None
        except VocXmlError as error:
            self.report.add(xml_path, f"malformed XML ({error})", self.options.image_action)
            return None
        sizes = []  # read when a box check first needs it

        def image_size():
            if not sizes:
                sizes.append(self._image_size(annotation, image_filename, image_ok))
            return sizes[0]

        boxes, neutral = [], []
        for k, obj in enumerate(annotation.objects):
            row = self._object_row(obj, f"object {k}", xml_path, image_size)
            if row is not None:
                boxes.append(row)
                neutral.append(bool(obj.difficult))
        return labels_array(boxes), neutral

    def _image_size(self, annotation, image_filename, image_ok):
        """``(width, height)`` from ``<size>``, else from the image file (reported), else None."""
        size = annotation.size()
        if size is not None or not image_ok:
            return size
        try:
            height, width = read_image(image_filename).shape[:2]
        except ImageReadError:
            return None
        bad_size = f"<size> width={annotation.width_text!r} height={annotation.height_text!r}"
        self.report.add(
            annotation.path, f"{bad_size}; used the image's size {width}x{height}", "fixed"
        )
        return width, height

    def _object_row(self, obj: VocObject, where: str, xml_path: str, image_size):
        """One object's label row, or None when the options leave it out."""
        options, report = self.options, self.report
        if obj.name not in self.class_index:
            self.unknown.add(xml_path, f"{where}: <name> {obj.name!r}", "dropped box")
            self.unknown_names.add(obj.name)
            return None
        class_id = self.class_index[obj.name]
        if not options.includes(class_id):
            return None
        for flag, reason in obj.flag_errors.items():
            report.add(xml_path, f"{where}: bad <{flag}> ({reason}); read as 0", "kept")
        if options.exclude_truncated and obj.truncated == 1:
            return None
        if options.exclude_difficult and obj.difficult == 1:
            return None
        if obj.box is None:
            report.add(xml_path, f"{where} ({obj.name}): bad box: {obj.box_error}", "dropped box")
            return None
        coords = obj.box
        box_text = f"[{coords['xmin']}, {coords['ymin']}, {coords['xmax']}, {coords['ymax']}]"
        if options.out_of_image_boxes != "keep":
            description = f"{where} ({obj.name}): box {box_text}"
            policy = options.out_of_image_boxes
            coords = _clip_to_image(coords, image_size(), description, xml_path, report, policy)
            if coords is None:
                return None
        description = f"{where} ({obj.name}): zero-size or inverted box {box_text}"
        if not _keeps_degenerate(coords, description, xml_path, report, options.degenerate_boxes):
            return None
        return _row(class_id, coords, self.columns)

    def raise_or_report_unknown(self) -> None:
        """Raises one error listing every unknown class name (``unknown_classes='raise'``), or
        adds the dropped objects to the report."""
        unknown = self.unknown
        if not unknown:
            return
        if self.options.unknown_classes != "raise":
            self.report.issues.extend(unknown.issues)
            return
        names = sorted(self.unknown_names)
        lines = [
            f"parse_xml: {len(unknown)} object(s) have a class name that is not in "
            f"classes ({', '.join(names)}); pass unknown_classes='drop' to drop them:"
        ]
        lines += [f"  {issue.file}: {issue.reason}" for issue in unknown.issues[:100]]
        if len(unknown) > 100:
            lines.append(f"  ... and {len(unknown) - 100} more")
        raise DataValidationError(
            "\n".join(lines), report=unknown, unknown_classes=names, classes=self.classes
        )


# ---------------------------------------------------------------------- CSV


def parse_csv(
    dataset,
    images_dir: str,
    labels_filename: str,
    input_format: Sequence[str],
    include_classes="all",
    random_sample=False,
    ret: bool = False,
    verbose: bool = True,
    *,
    bad_items: str = "drop",
    degenerate_boxes: str = "keep",
    seed=None,
    check_images: bool = False,
):
    """Parses a CSV file with one box per row (and a header row).

    Args:
        images_dir: the directory of the images.
        labels_filename: the CSV file.
        input_format: the column names of the CSV in order; must contain ``'image_name'``,
            ``'class_id'``, ``'xmin'``, ``'ymin'``, ``'xmax'``, ``'ymax'`` (e.g.
            ``['image_name', 'xmin', 'xmax', 'ymin', 'ymax', 'class_id']``).
        include_classes: ``'all'`` or a list of class ids to keep (rows of other classes are
            skipped; an image left without rows is not in the dataset, as in the original).
        random_sample: False, or a fraction in (0, 1]: keep each image with that
            probability.
        ret: return ``(images, filenames, labels, image_ids)``.
        verbose: show a progress bar.
        bad_items: ``'drop'`` or ``'raise'`` for rows with unparsable values and images whose
            file is missing (see `parse_xml`).
        degenerate_boxes: ``'keep'`` or ``'drop'`` zero-size boxes (reported either way).
        seed: seed of the random generator for ``random_sample``.
        check_images: decode every image to check that it is readable (see `parse_xml`).

    As in the original, the rows are sorted (by image name, then by the label values), the
    images come in sorted file-name order and the image id is the file name without its
    extension (the original cut at the first dot).

    Returns:
        With ``ret=True``: ``(images, filenames, labels, image_ids)``.
    """
    options = ParseOptions(
        include_classes=include_classes,
        bad_items=bad_items,
        degenerate_boxes=degenerate_boxes,
        check_images=check_images,
    )
    if labels_filename is None or input_format is None:
        raise ValueError("parse_csv needs labels_filename and input_format")
    input_format = list(input_format)
    required = ("image_name", *DEFAULT_LABELS_OUTPUT_FORMAT)
    missing_columns = [c for c in required if c not in input_format]
    if missing_columns:
        raise ValueError(f"input_format lacks the column(s) {missing_columns}: {input_format}")
    _start_parse(dataset, include_classes, verbose)
    dataset.images_dir = images_dir
    dataset.labels_filename = labels_filename
    dataset.input_format = input_format
    report = DataReport("parse_csv")
    rows = _read_csv_rows(
        labels_filename, input_format, dataset.labels_output_format, options, report
    )
    grouped: dict[str, list] = {}
    for row in sorted(rows):
        grouped.setdefault(row[0], []).append(row[1:])

    rng = np.random.default_rng(seed)
    dataset.filenames, dataset.image_ids, dataset.labels, dataset.eval_neutral = [], [], [], None
    missing = []
    for image_name, boxes in tqdm(grouped.items(), desc="Parsing CSV", disable=not verbose):
        if random_sample and rng.uniform(0, 1) < 1 - random_sample:
            continue
        filename = os.path.join(images_dir, image_name)
        if not _check_image_file(filename, report, options.image_action):
            missing.append(len(dataset.filenames))
        dataset.filenames.append(filename)
        dataset.image_ids.append(os.path.splitext(image_name)[0])
        dataset.labels.append(labels_array(boxes))
    _finish_parse(dataset, report, options, missing)
    if ret:
        return dataset.images, dataset.filenames, dataset.labels, dataset.image_ids
    return None


def _read_csv_rows(labels_filename, input_format, columns, options, report) -> list[list]:
    """The CSV's rows as ``[image_name, *label_row]`` (file order; bad rows reported)."""
    bad_row_action = "dropped box" if options.bad_items == "drop" else "error"
    rows = []
    with open(labels_filename, newline="") as csvfile:
        reader = csv.reader(csvfile, delimiter=",")
        next(reader, None)  # the header row
        for line_number, row in enumerate(reader, start=2):
            if not row or not any(cell.strip() for cell in row):
                continue
            where = f"{labels_filename}:{line_number}"
            try:
                values = {}
                for key in DEFAULT_LABELS_OUTPUT_FORMAT:
                    text = row[input_format.index(key)]
                    try:
                        values[key] = parse_number(text)
                    except ValueError:
                        raise ValueError(f"{key} = {text.strip()!r}") from None
                image_name = row[input_format.index("image_name")].strip()
            except (ValueError, IndexError) as error:
                report.add(where, f"bad row {row}: {error}", bad_row_action)
                continue
            if not options.includes(values["class_id"]):
                continue
            description = f"zero-size or inverted box in row {row}"
            if not _keeps_degenerate(values, description, where, report, options.degenerate_boxes):
                continue
            rows.append([image_name] + [values[key] for key in columns])
    return rows


# ---------------------------------------------------------------------- COCO JSON


def parse_json(
    dataset,
    images_dirs: Sequence[str],
    annotations_filenames: Sequence[str],
    ground_truth_available: bool = False,
    include_classes="all",
    ret: bool = False,
    verbose: bool = True,
    *,
    crowd_boxes: str = "eval_neutral",
    bad_items: str = "drop",
    out_of_image_boxes: str = "clip",
    degenerate_boxes: str = "keep",
    check_images: bool = False,
):
    """Parses MS COCO style JSON annotations.

    The categories of the first annotations file are mapped to consecutive class ids
    ``1..n`` in file order (0 = background): ``self.cats_to_classes``,
    ``self.classes_to_cats``, ``self.cats_to_names`` and ``self.classes_to_names`` hold the
    maps. A COCO box ``[x, y, w, h]`` becomes ``[class_id, x, y, x + w, y + h]`` (floats kept).

    Args:
        images_dirs: the image directories, one per annotations file.
        annotations_filenames: the COCO JSON files.
        ground_truth_available: read the ``annotations`` (otherwise only images and ids).
        include_classes: ``'all'`` or a list of COCO category ids to keep.
        ret: return ``(images, filenames, labels, image_ids)``.
        verbose: show a progress bar.
        crowd_boxes: what to do with ``iscrowd=1`` annotations (the original treated them as
            ordinary boxes): ``'eval_neutral'`` (default: kept, flagged evaluation-neutral,
            as the COCO protocol ignores them), ``'keep'`` (ordinary boxes) or ``'drop'``.
        bad_items, out_of_image_boxes, degenerate_boxes, check_images: as in `parse_xml`
            (the image size comes from the ``images`` entries).

    Returns:
        With ``ret=True``: ``(images, filenames, labels, image_ids)``; image ids are the COCO
        integer ids.
    """
    options = ParseOptions(
        include_classes=include_classes,
        crowd_boxes=crowd_boxes,
        bad_items=bad_items,
        out_of_image_boxes=out_of_image_boxes,
        degenerate_boxes=degenerate_boxes,
        check_images=check_images,
    )
    _check_same_length(
        ("images_dirs", images_dirs), ("annotations_filenames", annotations_filenames)
    )
    _start_parse(dataset, include_classes, verbose)
    dataset.images_dirs = list(images_dirs)
    dataset.annotations_filenames = list(annotations_filenames)
    report = DataReport("parse_json")
    with open(annotations_filenames[0]) as f:
        first = json.load(f)
    _set_coco_categories(dataset, first["categories"])

    dataset.filenames, dataset.image_ids = [], []
    dataset.labels = [] if ground_truth_available else None
    dataset.eval_neutral = [] if ground_truth_available else None
    missing = []
    for images_dir, annotations_filename in zip(images_dirs, annotations_filenames):
        if annotations_filename == annotations_filenames[0]:
            annotations = first
        else:
            with open(annotations_filename) as f:
                annotations = json.load(f)
        per_image = defaultdict(list)
        if ground_truth_available:
            for annotation in annotations.get("annotations", []):
                per_image[annotation["image_id"]].append(annotation)
        for image in tqdm(annotations["images"], desc="Parsing COCO JSON", disable=not verbose):
            filename = os.path.join(images_dir, image["file_name"])
            if not _check_image_file(filename, report, options.image_action):
                missing.append(len(dataset.filenames))
            dataset.filenames.append(filename)
            dataset.image_ids.append(image["id"])
            if ground_truth_available:
                source = (annotations_filename, image, per_image[image["id"]])
                boxes, neutral = _coco_boxes(dataset, source, options, report)
                dataset.labels.append(labels_array(boxes))
                dataset.eval_neutral.append(neutral)
    _finish_parse(dataset, report, options, missing)
    if ret:
        return dataset.images, dataset.filenames, dataset.labels, dataset.image_ids
    return None


def _set_coco_categories(dataset, categories) -> None:
    """COCO category ids -> consecutive class ids ``1..n`` in file order, and their names."""
    dataset.cats_to_names, dataset.classes_to_names = {}, ["background"]
    dataset.cats_to_classes, dataset.classes_to_cats = {}, {}
    for i, category in enumerate(categories):
        dataset.cats_to_names[category["id"]] = category["name"]
        dataset.classes_to_names.append(category["name"])
        dataset.cats_to_classes[category["id"]] = i + 1
        dataset.classes_to_cats[i + 1] = category["id"]


def _coco_boxes(dataset, source, options: ParseOptions, report: DataReport):
    """One image's label rows and eval_neutral flags; ``source`` is ``(annotations file,
    image entry, the image's annotations)``."""
    filename, image, annotations = source
    boxes, neutral = [], []
    width, height = image.get("width"), image.get("height")
    size = (width, height) if width and height else None
    for annotation in annotations:
        where = f"{filename} (image {image['id']}, annotation {annotation.get('id')})"
        category = annotation.get("category_id")
        if category not in dataset.cats_to_classes:
            report.add(where, f"unknown category_id {category!r}", "dropped box")
            continue
        if not options.includes(category):
            continue
        crowd = bool(annotation.get("iscrowd", 0))
        if crowd and options.crowd_boxes == "drop":
            continue
        try:
            x, y, w, h = (parse_number(str(v)) for v in annotation["bbox"])
        except (KeyError, ValueError, TypeError) as error:
            report.add(where, f"bad bbox ({error!r})", "dropped box")
            continue
        coords = {"xmin": x, "ymin": y, "xmax": x + w, "ymax": y + h}
        description = f"bbox {annotation['bbox']}"
        coords = _clip_to_image(
            coords, size, description, where, report, options.out_of_image_boxes
        )
        if coords is None:
            continue
        description = f"zero-size bbox {annotation['bbox']}"
        if not _keeps_degenerate(coords, description, where, report, options.degenerate_boxes):
            continue
        boxes.append(_row(dataset.cats_to_classes[category], coords, dataset.labels_output_format))
        neutral.append(crowd and options.crowd_boxes == "eval_neutral")
    return boxes, neutral
