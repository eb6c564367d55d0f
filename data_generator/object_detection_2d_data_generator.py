"""`DataGenerator`: parse a detection dataset, store it in HDF5 and serve processed batches.

A port of ssd_keras' ``DataGenerator`` (same constructor, parser, HDF5 and ``generate``
signatures, same ``returns`` options in the same order), in numpy + OpenCV; this module imports
no Keras. `DataGenerator.to_py_dataset` wraps the same batch logic in a ``keras.utils.PyDataset``
(defined in `data_generator.keras_dataset`, imported only when called).

Labels are one array per image, shape `(n_boxes, 5)`, with the columns in
``labels_output_format`` (by default ``('class_id', 'xmin', 'ymin', 'xmax', 'ymax')``, absolute
pixels, see `bounding_box_utils.LABEL_FORMAT`). Integer coordinates give an int64 array, any
fractional coordinate a float64 array.

Differences from the original (kept behaviours are listed in the class docstring):

- images are read with OpenCV as RGB uint8 whatever the file (grayscale, RGBA, palette, 16 bit, a
  PNG named ``.jpg``), see `data_generator.image_io`;
- bad items (unreadable/missing image, missing or malformed annotation, missing or zero
  ``<size>``, boxes outside the image, zero-size boxes, unknown classes, unparsable values) are
  collected in one `DataReport` (``self.data_report``), emitted as one warning, and fixed or
  dropped per explicit options, instead of crashing in the middle of a parse or of training;
- ``generate`` no longer permutes the dataset's own lists when shuffling, takes a ``seed``, drops
  an item whose transformation fails without misaligning the other outputs, removes the
  evaluation-neutral flags of the boxes it removes as degenerate, and accepts any callable label
  encoder;
- HDF5 labels are stored as float64 (the original truncated them to int32), image ids come back as
  ``str`` (not ``bytes``), filenames are stored too, and ``resize`` also scales the labels (the
  original resized the images but not their boxes).
"""

from __future__ import annotations

import csv
import inspect
import json
import os
import pickle
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from lxml import etree
from tqdm.auto import tqdm

from data_generator.data_report import DataReport, DataValidationError
from data_generator.image_io import ImageReadError, read_image, to_rgb_uint8

DEFAULT_LABELS_OUTPUT_FORMAT = ("class_id", "xmin", "ymin", "xmax", "ymax")

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

RETURNS_ORDER = (
    "processed_images",
    "encoded_labels",
    "matched_anchors",
    "processed_labels",
    "filenames",
    "image_ids",
    "evaluation-neutral",
    "inverse_transform",
    "original_images",
    "original_labels",
)
"""Every option of ``generate(returns=...)``, in the order the outputs come in a batch."""

_RETURNS_NEEDING_LABELS = (
    "original_labels",
    "processed_labels",
    "encoded_labels",
    "matched_anchors",
    "evaluation-neutral",
)

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
DEGENERATE_BOX_HANDLING = ("remove", "warn", "keep", None)


class DegenerateBatchError(Exception):
    """A batch ended up empty (every item was dropped)."""


class DatasetError(Exception):
    """The generator has no dataset, or a dataset file is not what it should be."""


def _check_choice(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _parse_number(text: str | None) -> int | float:
    """'12' -> 12, '12.0' -> 12, '12.5' -> 12.5; raises ValueError for anything else."""
    if text is None:
        raise ValueError("missing value")
    value = float(text.strip())
    if not np.isfinite(value):
        raise ValueError(f"not a finite number: {text.strip()!r}")
    return int(value) if value.is_integer() else value


def labels_array(rows: Iterable[Sequence[float]] | np.ndarray, n_columns: int = 5) -> np.ndarray:
    """Rows of one image's labels as an `(n_boxes, n_columns)` array.

    int64 when every value is integral (the original's lists of ints), float64 otherwise; an image
    without boxes gives shape `(0, n_columns)` (not `(0,)`).
    """
    array = np.asarray(rows)
    if array.size == 0:
        return np.zeros((0, n_columns), dtype=np.int64)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        array = array.astype(np.float64)
    array = array.reshape(-1, n_columns)
    if np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0):
        return array.astype(np.int64)
    return array


def degenerate_mask(labels: np.ndarray, labels_format: dict[str, int]) -> np.ndarray:
    """True for each box with ``xmax <= xmin`` or ``ymax <= ymin`` (the BoxFilter criterion)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(labels.shape[:1], dtype=bool)
    xmin, ymin = labels[:, labels_format["xmin"]], labels[:, labels_format["ymin"]]
    xmax, ymax = labels[:, labels_format["xmax"]], labels[:, labels_format["ymax"]]
    return ~((xmax > xmin) & (ymax > ymin))


def _accepts(function: Callable, parameter: str) -> bool:
    try:
        return parameter in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _as_inverter_list(inverter) -> list:
    """A transformation's inverter as a list: a chain returns a list of them (in order)."""
    if inverter is None:
        return []
    if isinstance(inverter, (list, tuple)):
        return list(inverter)
    return [inverter]


def _stack_images(images: list[np.ndarray]) -> np.ndarray:
    """One array `(batch, h, w, c)` when all images agree in shape, else a 1-D object array."""
    if images and all(image.shape == images[0].shape for image in images):
        return np.stack(images)
    batch = np.empty(len(images), dtype=object)
    for i, image in enumerate(images):
        batch[i] = image
    return batch


class DataGenerator:
    """A detection dataset: file names, labels, image ids and evaluation-neutral flags.

    Load a dataset with one of the parsers (`parse_xml` for Pascal VOC, `parse_csv`, `parse_json`
    for COCO), from lists given to the constructor, or from an HDF5 file written by
    `create_hdf5_dataset`; then get batches with `generate` (a Python generator) or
    `to_py_dataset` (a ``keras.utils.PyDataset`` for ``model.fit`` with workers).

    Args:
        load_images_into_memory: read all images into memory once (RGB uint8) instead of from
            disk for every batch.
        hdf5_dataset_path: an HDF5 dataset written by `create_hdf5_dataset` to load.
        filenames: a list of image paths, or the path of a text file (one image name per line,
            joined to ``images_dir``) or of a pickle file holding such a list.
        filenames_type: ``'text'`` or ``'pickle'``: how to read ``filenames`` when it is a path.
        images_dir: directory joined to each line of a text ``filenames`` file.
        labels: per image an array/list of rows in ``labels_output_format``, or a pickle file.
        image_ids: per image an id, or a pickle file.
        eval_neutral: per image one bool per box (True = ignored in evaluation), or a pickle file.
        labels_output_format: the column order of the labels.
        verbose: show tqdm progress bars.

    Kept from the original: the public attributes (``filenames``, ``labels``, ``image_ids``,
    ``eval_neutral``, ``images``, ``dataset_size``, ``dataset_indices``, ``labels_format``,
    ``hdf5_dataset``...), the parse_xml rules (``<id>.jpg`` in each images dir, objects in XML
    order, ``difficult`` -> eval_neutral, zero-size boxes kept verbatim by default), parse_csv's
    sorted order, parse_json's consecutive class ids, and the batch semantics of ``generate``
    (items without boxes dropped unless ``keep_images_without_gt``, degenerate boxes removed after
    the transformations, the smaller last batch, the ``returns`` order).

    Example:

    ```python
    dataset = DataGenerator()
    dataset.parse_xml(
        images_dirs=["VOC2007/JPEGImages"],
        image_set_filenames=["VOC2007/ImageSets/Main/trainval.txt"],
        annotations_dirs=["VOC2007/Annotations"],
        classes=VOC_CLASSES,
    )
    batches = dataset.generate(
        batch_size=32, transformations=[resize], label_encoder=ssd_input_encoder
    )
    images, y_true = next(batches)
    ```
    """

    def __init__(
        self,
        load_images_into_memory: bool = False,
        hdf5_dataset_path: str | None = None,
        filenames=None,
        filenames_type: str = "text",
        images_dir: str | None = None,
        labels=None,
        image_ids=None,
        eval_neutral=None,
        labels_output_format: Sequence[str] = DEFAULT_LABELS_OUTPUT_FORMAT,
        verbose: bool = True,
    ):
        labels_output_format = tuple(labels_output_format)
        if sorted(labels_output_format) != sorted(DEFAULT_LABELS_OUTPUT_FORMAT):
            raise ValueError(
                "labels_output_format must be an ordering of "
                f"{DEFAULT_LABELS_OUTPUT_FORMAT}, got {labels_output_format!r}"
            )
        _check_choice("filenames_type", filenames_type, ("text", "pickle"))
        self.labels_output_format = labels_output_format
        self.labels_format = {key: labels_output_format.index(key) for key in labels_output_format}
        self.load_images_into_memory = load_images_into_memory
        self.verbose = verbose
        self.dataset_size = 0
        self.dataset_indices = np.zeros(0, dtype=np.int32)
        self.images = None
        self.data_report = DataReport("DataGenerator")
        self.hdf5_dataset_path = None
        self._hdf5 = None
        self._hdf5_pid = None

        if filenames is not None:
            if isinstance(filenames, (list, tuple)):
                self.filenames = list(filenames)
            elif isinstance(filenames, (str, os.PathLike)):
                if filenames_type == "pickle":
                    with open(filenames, "rb") as f:
                        self.filenames = list(pickle.load(f))
                else:
                    with open(filenames) as f:
                        self.filenames = [
                            os.path.join(images_dir or "", line.strip())
                            for line in f
                            if line.strip()
                        ]
            else:
                raise ValueError(
                    "filenames must be a list/tuple of paths or the path of a text or pickle "
                    f"file, got {type(filenames).__name__}"
                )
            self._set_size(len(self.filenames))
        else:
            self.filenames = None

        self.labels = self._list_or_pickle("labels", labels)
        if self.labels is not None:
            self.labels = [labels_array(y) for y in self.labels]
        self.image_ids = self._list_or_pickle("image_ids", image_ids)
        self.eval_neutral = self._list_or_pickle("eval_neutral", eval_neutral)
        for name in ("labels", "image_ids", "eval_neutral"):
            values = getattr(self, name)
            if values is not None and self.filenames is not None:
                if len(values) != len(self.filenames):
                    raise ValueError(
                        f"{name} has {len(values)} entries but filenames has {len(self.filenames)}"
                    )

        if hdf5_dataset_path is not None:
            self.hdf5_dataset_path = os.fspath(hdf5_dataset_path)
            self.load_hdf5_dataset(verbose=verbose)
        elif load_images_into_memory and self.filenames is not None:
            # Given lists are used as they are: an unreadable file is an error, not a drop.
            report = DataReport("DataGenerator(filenames=...)")
            self._load_images_into_memory(report, "raise")
            report.raise_errors()

    # ------------------------------------------------------------------ small helpers

    @staticmethod
    def _list_or_pickle(name: str, value):
        if value is None:
            return None
        if isinstance(value, (str, os.PathLike)):
            with open(value, "rb") as f:
                return list(pickle.load(f))
        if isinstance(value, (list, tuple)):
            return list(value)
        raise ValueError(
            f"{name} must be a list/tuple or the path of a pickle file, got {type(value).__name__}"
        )

    def _set_size(self, size: int) -> None:
        self.dataset_size = size
        self.dataset_indices = np.arange(size, dtype=np.int32)

    def get_dataset_size(self) -> int:
        """The number of images in the dataset."""
        return self.dataset_size

    @property
    def hdf5_dataset(self):
        """The open ``h5py.File`` (read-only) of the HDF5 dataset, or None.

        Opened lazily, and re-opened in a forked worker process (an h5py handle must not cross a
        fork), so a generator backed by HDF5 works with ``use_multiprocessing=True``.
        """
        if self.hdf5_dataset_path is None:
            return None
        if self._hdf5 is None or self._hdf5_pid != os.getpid():
            import h5py

            self._hdf5 = h5py.File(self.hdf5_dataset_path, "r")
            self._hdf5_pid = os.getpid()
        return self._hdf5

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_hdf5"] = None
        state["_hdf5_pid"] = None
        return state

    def _load_images_into_memory(self, report: DataReport, bad_items: str) -> list[int]:
        """Reads every file into ``self.images``; returns the indices that could not be read."""
        images, failed = [], []
        for i, filename in enumerate(
            tqdm(self.filenames, desc="Loading images into memory", disable=not self.verbose)
        ):
            try:
                images.append(read_image(filename))
            except ImageReadError as error:
                failed.append(i)
                images.append(None)
                action = "dropped image" if bad_items == "drop" else "error"
                report.add(filename, f"unreadable image ({error})", action)
        self.images = images
        return failed

    def _drop_items(self, indices: Sequence[int]) -> None:
        drop = set(indices)
        for name in ("filenames", "labels", "image_ids", "eval_neutral", "images"):
            values = getattr(self, name)
            if values is not None:
                setattr(self, name, [v for i, v in enumerate(values) if i not in drop])
        self._set_size(len(self.filenames))

    def _find_undecodable_images(
        self, report: DataReport, bad_items: str, skip: Sequence[int]
    ) -> list[int]:
        """Decodes every image file (in threads: OpenCV releases the GIL) and reports the ones
        that are not images (empty, truncated, another kind of file); returns their indices."""
        from concurrent.futures import ThreadPoolExecutor

        skip = set(skip)
        indices = [i for i in range(len(self.filenames)) if i not in skip]

        def problem(i):
            try:
                read_image(self.filenames[i])
            except ImageReadError as error:
                return str(error).removeprefix(f"{self.filenames[i]}: ")
            return None

        workers = max(1, min(8, os.cpu_count() or 1))
        with ThreadPoolExecutor(workers) as pool:
            problems = list(pool.map(problem, indices))
        action = "dropped image" if bad_items == "drop" else "error"
        failed = []
        for i, reason in zip(indices, problems):
            if reason is not None:
                failed.append(i)
                report.add(self.filenames[i], f"unreadable image ({reason})", action)
        return failed

    def _finish_parse(
        self, report: DataReport, bad_items: str, missing: list[int], check_images: bool = False
    ) -> None:
        """Checks/loads the images, drops or raises for bad items, emits the one summary."""
        self._set_size(len(self.filenames))
        if self.load_images_into_memory:
            missing = sorted(set(missing) | set(self._load_images_into_memory(report, bad_items)))
        elif check_images:
            missing = sorted(
                set(missing) | set(self._find_undecodable_images(report, bad_items, missing))
            )
        self.data_report = report
        if bad_items == "raise":
            report.raise_errors()
        self._drop_items(missing)
        report.emit(stacklevel=4)  # points at the caller of the parser

    # ------------------------------------------------------------------ Pascal VOC XML

    def parse_xml(
        self,
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

        Missing ``<truncated>``/``<difficult>`` tags count as 0. A missing or zero ``<size>``
        is fixed by reading the image's size (when a box check needs it). An object without a
        valid ``<bndbox>`` is dropped. Everything fixed or dropped is listed in
        ``self.data_report`` and summarised in one `DataWarning`.

        Returns:
            With ``ret=True``: ``(images, filenames, labels, image_ids, eval_neutral)``.

        Raises:
            ValueError (a `DataValidationError`): for unknown classes with
                ``unknown_classes='raise'``, and bad items with ``bad_items='raise'``.
        """
        _check_choice("bad_items", bad_items, BAD_ITEM_POLICIES)
        _check_choice("out_of_image_boxes", out_of_image_boxes, OUT_OF_IMAGE_POLICIES)
        _check_choice("degenerate_boxes", degenerate_boxes, DEGENERATE_POLICIES)
        _check_choice("unknown_classes", unknown_classes, UNKNOWN_CLASS_POLICIES)
        if len(images_dirs) != len(image_set_filenames):
            raise ValueError(
                f"images_dirs ({len(images_dirs)}) and image_set_filenames "
                f"({len(image_set_filenames)}) must have the same length"
            )
        has_annotations = bool(annotations_dirs)
        if has_annotations and len(annotations_dirs) != len(images_dirs):
            raise ValueError(
                f"annotations_dirs ({len(annotations_dirs)}) and images_dirs "
                f"({len(images_dirs)}) must have the same length"
            )
        self.images_dirs = list(images_dirs)
        self.annotations_dirs = list(annotations_dirs) if has_annotations else []
        self.image_set_filenames = list(image_set_filenames)
        self.classes = list(classes)
        self.include_classes = include_classes
        self.verbose = verbose
        self.hdf5_dataset_path = None
        self._hdf5 = None
        self.images = None
        class_index = {name: i for i, name in enumerate(self.classes)}

        self.filenames, self.image_ids = [], []
        self.labels = [] if has_annotations else None
        self.eval_neutral = [] if has_annotations else None
        report = DataReport("parse_xml")
        unknown = DataReport("parse_xml")
        bad = []  # indices of items to drop
        unknown_names: set[str] = set()
        drop_action = "dropped image" if bad_items == "drop" else "error"

        for n, (images_dir, set_file) in enumerate(zip(images_dirs, image_set_filenames)):
            annotations_dir = self.annotations_dirs[n] if has_annotations else None
            with open(set_file) as f:
                image_ids = [line.strip() for line in f if line.strip()]
            description = f"Parsing {os.path.basename(os.fspath(set_file))}"
            for image_id in tqdm(image_ids, desc=description, disable=not verbose):
                index = len(self.filenames)
                filename = os.path.join(images_dir, f"{image_id}.jpg")
                self.filenames.append(filename)
                self.image_ids.append(image_id)
                image_ok = self._check_image_file(filename, report, drop_action)
                if not image_ok:
                    bad.append(index)
                if annotations_dir is None:
                    continue
                xml_path = os.path.join(annotations_dir, f"{image_id}.xml")
                parsed = self._parse_voc_annotation(
                    xml_path,
                    filename,
                    class_index,
                    include_classes,
                    exclude_truncated,
                    exclude_difficult,
                    out_of_image_boxes,
                    degenerate_boxes,
                    unknown_classes,
                    report,
                    unknown,
                    drop_action,
                    image_ok,
                    unknown_names,
                )
                if parsed is None:
                    bad.append(index)
                    parsed = (labels_array([]), [])
                self.labels.append(parsed[0])
                self.eval_neutral.append(parsed[1])

        if unknown:
            if unknown_classes == "raise":
                names = sorted(unknown_names)
                lines = [
                    f"parse_xml: {len(unknown)} object(s) have a class name that is not in "
                    f"classes ({', '.join(names)}); pass unknown_classes='drop' to drop them:"
                ]
                lines += [f"  {issue.file}: {issue.reason}" for issue in unknown.issues[:100]]
                if len(unknown) > 100:
                    lines.append(f"  ... and {len(unknown) - 100} more")
                raise DataValidationError(
                    "\n".join(lines),
                    report=unknown,
                    unknown_classes=names,
                    classes=list(self.classes),
                )
            report.issues.extend(unknown.issues)
        self._finish_parse(report, bad_items, sorted(set(bad)), check_images)
        if ret:
            return self.images, self.filenames, self.labels, self.image_ids, self.eval_neutral
        return None

    @staticmethod
    def _check_image_file(filename, report, drop_action) -> bool:
        if not os.path.isfile(filename):
            report.add(filename, "image file not found", drop_action)
            return False
        return True

    def _parse_voc_annotation(
        self,
        xml_path,
        image_filename,
        class_index,
        include_classes,
        exclude_truncated,
        exclude_difficult,
        out_of_image_boxes,
        degenerate_boxes,
        unknown_classes,
        report,
        unknown,
        drop_action,
        image_ok,
        unknown_names,
    ):
        """Labels and eval_neutral flags of one XML file, or None when the file is unusable."""
        try:
            root = etree.parse(xml_path).getroot()
        except OSError as error:
            report.add(xml_path, f"annotation file not readable ({error})", drop_action)
            return None
        except etree.XMLSyntaxError as error:
            report.add(xml_path, f"malformed XML ({error})", drop_action)
            return None

        size = None  # (width, height), read lazily

        def image_size():
            nonlocal size
            if size is not None:
                return size
            width, height = root.findtext("size/width"), root.findtext("size/height")
            try:
                size = (_parse_number(width), _parse_number(height))
                if size[0] <= 0 or size[1] <= 0:
                    raise ValueError
            except ValueError:
                bad_size = f"<size> width={width!r} height={height!r}"
                if not image_ok:
                    size = (None, None)
                    return size
                try:
                    h, w = read_image(image_filename).shape[:2]
                except ImageReadError:
                    size = (None, None)
                    return size
                size = (w, h)
                report.add(xml_path, f"{bad_size}; used the image's size {w}x{h}", "fixed")
            return size

        boxes, neutral = [], []
        for k, obj in enumerate(root.findall("object")):
            where = f"object {k}"
            class_name = (obj.findtext("name") or "").strip()
            if class_name not in class_index:
                unknown.add(xml_path, f"{where}: <name> {class_name!r}", "dropped box")
                unknown_names.add(class_name)
                continue
            class_id = class_index[class_name]
            if include_classes != "all" and class_id not in include_classes:
                continue
            try:
                truncated = int(_parse_number(obj.findtext("truncated") or "0"))
                difficult = int(_parse_number(obj.findtext("difficult") or "0"))
            except ValueError as error:
                report.add(xml_path, f"{where}: bad <truncated>/<difficult> ({error})", "kept")
                truncated = difficult = 0
            if exclude_truncated and truncated == 1:
                continue
            if exclude_difficult and difficult == 1:
                continue
            bndbox = obj.find("bndbox")
            coords = {}
            try:
                if bndbox is None:
                    raise ValueError("no <bndbox>")
                for key in ("xmin", "ymin", "xmax", "ymax"):
                    text = bndbox.findtext(key)
                    try:
                        coords[key] = _parse_number(text)
                    except ValueError:
                        raise ValueError(f"<{key}> = {text!r}") from None
            except ValueError as error:
                report.add(xml_path, f"{where} ({class_name}): bad box: {error}", "dropped box")
                continue
            box_text = f"[{coords['xmin']}, {coords['ymin']}, {coords['xmax']}, {coords['ymax']}]"

            if out_of_image_boxes != "keep":
                width, height = image_size()
                if width is not None:
                    clipped = {
                        "xmin": min(max(coords["xmin"], 0), width),
                        "xmax": min(max(coords["xmax"], 0), width),
                        "ymin": min(max(coords["ymin"], 0), height),
                        "ymax": min(max(coords["ymax"], 0), height),
                    }
                    if clipped != coords:
                        reason = (
                            f"{where} ({class_name}): box {box_text} outside the image "
                            f"{width}x{height}"
                        )
                        if out_of_image_boxes == "drop":
                            report.add(xml_path, reason, "dropped box")
                            continue
                        report.add(xml_path, reason, "clipped box")
                        coords = clipped
            if not (coords["xmax"] > coords["xmin"] and coords["ymax"] > coords["ymin"]):
                reason = f"{where} ({class_name}): zero-size or inverted box {box_text}"
                if degenerate_boxes == "keep":
                    reason += f" ({DEGENERATE_KEPT})"
                if degenerate_boxes == "drop":
                    report.add(xml_path, reason, "dropped box")
                    continue
                report.add(xml_path, reason, "kept")
            values = {"class_id": class_id, **coords}
            boxes.append([values[key] for key in self.labels_output_format])
            neutral.append(bool(difficult))
        return labels_array(boxes), neutral

    # ------------------------------------------------------------------ CSV

    def parse_csv(
        self,
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
        _check_choice("bad_items", bad_items, BAD_ITEM_POLICIES)
        _check_choice("degenerate_boxes", degenerate_boxes, DEGENERATE_POLICIES)
        if labels_filename is None or input_format is None:
            raise ValueError("parse_csv needs labels_filename and input_format")
        input_format = list(input_format)
        required = ("image_name", *DEFAULT_LABELS_OUTPUT_FORMAT)
        missing_columns = [c for c in required if c not in input_format]
        if missing_columns:
            raise ValueError(f"input_format lacks the column(s) {missing_columns}: {input_format}")
        self.images_dir = images_dir
        self.labels_filename = labels_filename
        self.input_format = input_format
        self.include_classes = include_classes
        self.verbose = verbose
        self.hdf5_dataset_path = None
        self._hdf5 = None
        self.images = None
        report = DataReport("parse_csv")
        drop_action = "dropped box" if bad_items == "drop" else "error"

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
                            values[key] = _parse_number(text)
                        except ValueError:
                            raise ValueError(f"{key} = {text.strip()!r}") from None
                    image_name = row[input_format.index("image_name")].strip()
                except (ValueError, IndexError) as error:
                    report.add(where, f"bad row {row}: {error}", drop_action)
                    continue
                if include_classes != "all" and values["class_id"] not in include_classes:
                    continue
                if not (values["xmax"] > values["xmin"] and values["ymax"] > values["ymin"]):
                    reason = f"zero-size or inverted box in row {row}"
                    if degenerate_boxes == "keep":
                        reason += f" ({DEGENERATE_KEPT})"
                    if degenerate_boxes == "drop":
                        report.add(where, reason, "dropped box")
                        continue
                    report.add(where, reason, "kept")
                rows.append([image_name] + [values[key] for key in self.labels_output_format])
        rows.sort()

        grouped: dict[str, list] = {}
        for row in rows:
            grouped.setdefault(row[0], []).append(row[1:])
        rng = np.random.default_rng(seed)
        self.filenames, self.image_ids, self.labels, self.eval_neutral = [], [], [], None
        missing = []
        image_action = "dropped image" if bad_items == "drop" else "error"
        for image_name, boxes in tqdm(grouped.items(), desc="Parsing CSV", disable=not verbose):
            if random_sample and rng.uniform(0, 1) < 1 - random_sample:
                continue
            filename = os.path.join(images_dir, image_name)
            if not self._check_image_file(filename, report, image_action):
                missing.append(len(self.filenames))
            self.filenames.append(filename)
            self.image_ids.append(os.path.splitext(image_name)[0])
            self.labels.append(labels_array(boxes))
        self._finish_parse(report, bad_items, missing, check_images)
        if ret:
            return self.images, self.filenames, self.labels, self.image_ids
        return None

    # ------------------------------------------------------------------ COCO JSON

    def parse_json(
        self,
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
        _check_choice("crowd_boxes", crowd_boxes, CROWD_POLICIES)
        _check_choice("bad_items", bad_items, BAD_ITEM_POLICIES)
        _check_choice("out_of_image_boxes", out_of_image_boxes, OUT_OF_IMAGE_POLICIES)
        _check_choice("degenerate_boxes", degenerate_boxes, DEGENERATE_POLICIES)
        if len(images_dirs) != len(annotations_filenames):
            raise ValueError(
                f"images_dirs ({len(images_dirs)}) and annotations_filenames "
                f"({len(annotations_filenames)}) must have the same length"
            )
        self.images_dirs = list(images_dirs)
        self.annotations_filenames = list(annotations_filenames)
        self.include_classes = include_classes
        self.verbose = verbose
        self.hdf5_dataset_path = None
        self._hdf5 = None
        self.images = None
        report = DataReport("parse_json")
        image_action = "dropped image" if bad_items == "drop" else "error"

        with open(annotations_filenames[0]) as f:
            first = json.load(f)
        self.cats_to_names, self.classes_to_names = {}, ["background"]
        self.cats_to_classes, self.classes_to_cats = {}, {}
        for i, category in enumerate(first["categories"]):
            self.cats_to_names[category["id"]] = category["name"]
            self.classes_to_names.append(category["name"])
            self.cats_to_classes[category["id"]] = i + 1
            self.classes_to_cats[i + 1] = category["id"]

        self.filenames, self.image_ids = [], []
        self.labels = [] if ground_truth_available else None
        self.eval_neutral = [] if ground_truth_available else None
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
                if not self._check_image_file(filename, report, image_action):
                    missing.append(len(self.filenames))
                self.filenames.append(filename)
                self.image_ids.append(image["id"])
                if not ground_truth_available:
                    continue
                boxes, neutral = self._coco_boxes(
                    image,
                    per_image[image["id"]],
                    annotations_filename,
                    include_classes,
                    crowd_boxes,
                    out_of_image_boxes,
                    degenerate_boxes,
                    report,
                )
                self.labels.append(labels_array(boxes))
                self.eval_neutral.append(neutral)
        self._finish_parse(report, bad_items, missing, check_images)
        if ret:
            return self.images, self.filenames, self.labels, self.image_ids
        return None

    def _coco_boxes(
        self,
        image,
        annotations,
        source,
        include_classes,
        crowd_boxes,
        out_of_image_boxes,
        degenerate_boxes,
        report,
    ):
        boxes, neutral = [], []
        width, height = image.get("width"), image.get("height")
        for annotation in annotations:
            where = f"{source} (image {image['id']}, annotation {annotation.get('id')})"
            category = annotation.get("category_id")
            if category not in self.cats_to_classes:
                report.add(where, f"unknown category_id {category!r}", "dropped box")
                continue
            if include_classes != "all" and category not in include_classes:
                continue
            crowd = bool(annotation.get("iscrowd", 0))
            if crowd and crowd_boxes == "drop":
                continue
            try:
                x, y, w, h = (_parse_number(str(v)) for v in annotation["bbox"])
            except (KeyError, ValueError, TypeError) as error:
                report.add(where, f"bad bbox ({error!r})", "dropped box")
                continue
            coords = {"xmin": x, "ymin": y, "xmax": x + w, "ymax": y + h}
            if out_of_image_boxes != "keep" and width and height:
                clipped = {
                    "xmin": min(max(coords["xmin"], 0), width),
                    "xmax": min(max(coords["xmax"], 0), width),
                    "ymin": min(max(coords["ymin"], 0), height),
                    "ymax": min(max(coords["ymax"], 0), height),
                }
                if clipped != coords:
                    reason = f"bbox {annotation['bbox']} outside the image {width}x{height}"
                    if out_of_image_boxes == "drop":
                        report.add(where, reason, "dropped box")
                        continue
                    report.add(where, reason, "clipped box")
                    coords = clipped
            if not (coords["xmax"] > coords["xmin"] and coords["ymax"] > coords["ymin"]):
                reason = f"zero-size bbox {annotation['bbox']}"
                if degenerate_boxes == "keep":
                    reason += f" ({DEGENERATE_KEPT})"
                if degenerate_boxes == "drop":
                    report.add(where, reason, "dropped box")
                    continue
                report.add(where, reason, "kept")
            values = {"class_id": self.cats_to_classes[category], **coords}
            boxes.append([values[key] for key in self.labels_output_format])
            neutral.append(crowd and crowd_boxes == "eval_neutral")
        return boxes, neutral

    # ------------------------------------------------------------------ HDF5

    def create_hdf5_dataset(
        self,
        file_path: str = "dataset.h5",
        resize=False,
        variable_image_size: bool = True,
        verbose: bool = True,
        *,
        bad_items: str = "drop",
    ) -> None:
        """Writes the dataset (images, labels, ids, eval_neutral, filenames) to one HDF5 file.

        Afterwards this generator reads from that file (as if constructed with
        ``hdf5_dataset_path=file_path``).

        Layout (compatible with the original): datasets ``images`` (vlen uint8, flattened),
        ``image_shapes`` (n, 3) int32, ``labels`` (vlen float64, flattened; the original used
        int32), ``label_shapes`` (n, 2), ``image_ids`` (vlen str), ``eval_neutral`` (vlen bool),
        ``filenames`` (vlen str, new); attributes ``has_labels``, ``has_image_ids``,
        ``has_eval_neutral``, ``has_filenames``, ``variable_image_size``.

        Args:
            file_path: the HDF5 file to write.
            resize: False, or ``(height, width)``: resize every image (bilinear) and scale its
                labels' coordinates with it (kept as floats).
            variable_image_size: recorded in the ``variable_image_size`` attribute (False when
                ``resize`` is given).
            verbose: show a progress bar.
            bad_items: ``'drop'`` (default) leaves an unreadable image out of the file (reported);
                ``'raise'`` raises one `DataValidationError` listing them.
        """
        import cv2
        import h5py

        _check_choice("bad_items", bad_items, BAD_ITEM_POLICIES)
        if self.dataset_size == 0:
            raise DatasetError("create_hdf5_dataset: no dataset loaded")
        if resize and (len(resize) != 2 or min(resize) <= 0):
            raise ValueError(f"resize must be False or (height, width), got {resize!r}")
        report = DataReport("create_hdf5_dataset")
        action = "dropped image" if bad_items == "drop" else "error"
        file_path = os.fspath(file_path)
        fmt = self.labels_format
        size = self.dataset_size

        n_written = 0
        with h5py.File(file_path, "w") as f:
            attrs = f.attrs
            attrs["has_labels"] = self.labels is not None
            attrs["has_image_ids"] = self.image_ids is not None
            attrs["has_eval_neutral"] = self.eval_neutral is not None
            attrs["has_filenames"] = self.filenames is not None
            attrs["variable_image_size"] = bool(variable_image_size and not resize)
            h5_images = f.create_dataset(
                "images", shape=(size,), maxshape=(None,), dtype=h5py.vlen_dtype(np.uint8)
            )
            h5_shapes = f.create_dataset(
                "image_shapes", shape=(size, 3), maxshape=(None, 3), dtype=np.int32
            )
            if self.labels is not None:
                h5_labels = f.create_dataset(
                    "labels", shape=(size,), maxshape=(None,), dtype=h5py.vlen_dtype(np.float64)
                )
                h5_label_shapes = f.create_dataset(
                    "label_shapes", shape=(size, 2), maxshape=(None, 2), dtype=np.int32
                )
            string = h5py.string_dtype()
            if self.image_ids is not None:
                h5_ids = f.create_dataset(
                    "image_ids", shape=(size,), maxshape=(None,), dtype=string
                )
            if self.eval_neutral is not None:
                h5_neutral = f.create_dataset(
                    "eval_neutral", shape=(size,), maxshape=(None,), dtype=h5py.vlen_dtype(np.bool_)
                )
            if self.filenames is not None:
                h5_filenames = f.create_dataset(
                    "filenames", shape=(size,), maxshape=(None,), dtype=string
                )

            for i in tqdm(range(size), desc="Creating HDF5 dataset", disable=not verbose):
                try:
                    image = self._load_image(i)
                except ImageReadError as error:
                    report.add(self._item_name(i), f"unreadable image ({error})", action)
                    continue
                labels = None
                if self.labels is not None:
                    labels = labels_array(self.labels[i]).astype(np.float64)
                if resize:
                    height, width = image.shape[:2]
                    image = cv2.resize(
                        image, (resize[1], resize[0]), interpolation=cv2.INTER_LINEAR
                    )
                    if labels is not None and labels.size:
                        labels[:, [fmt["xmin"], fmt["xmax"]]] *= resize[1] / width
                        labels[:, [fmt["ymin"], fmt["ymax"]]] *= resize[0] / height
                j = n_written
                h5_images[j] = image.reshape(-1)
                h5_shapes[j] = image.shape
                if labels is not None:
                    h5_labels[j] = labels.reshape(-1)
                    h5_label_shapes[j] = labels.shape
                if self.image_ids is not None:
                    h5_ids[j] = str(self.image_ids[i])
                if self.eval_neutral is not None:
                    h5_neutral[j] = np.asarray(self.eval_neutral[i], dtype=np.bool_).reshape(-1)
                if self.filenames is not None:
                    h5_filenames[j] = os.fspath(self.filenames[i])
                n_written += 1
            for dataset in f.values():
                dataset.resize(n_written, axis=0)
        if bad_items == "raise" and report:
            os.remove(file_path)
            report.raise_errors()
        report.emit()
        self.data_report = report
        self.hdf5_dataset_path = file_path
        self._hdf5 = None
        self.load_hdf5_dataset(verbose=verbose)

    def load_hdf5_dataset(self, verbose: bool = True) -> None:
        """Loads labels, ids, eval_neutral and filenames from ``self.hdf5_dataset_path``.

        Images stay in the file (read per batch) unless ``load_images_into_memory``.
        """
        f = self.hdf5_dataset
        for key in ("images", "image_shapes"):
            if key not in f:
                raise DatasetError(f"{self.hdf5_dataset_path}: no {key!r} dataset in the file")
        self._set_size(len(f["images"]))
        progress = {"disable": not verbose}
        self.images = None
        if self.load_images_into_memory:
            images, shapes = f["images"], f["image_shapes"][()]
            self.images = [
                images[i].reshape(shapes[i])
                for i in tqdm(range(self.dataset_size), desc="Loading images", **progress)
            ]
        self.labels = None
        if f.attrs.get("has_labels", False):
            labels, shapes = f["labels"], f["label_shapes"][()]
            self.labels = [
                labels_array(labels[i].reshape(shapes[i]))
                for i in tqdm(range(self.dataset_size), desc="Loading labels", **progress)
            ]
        self.image_ids = None
        if f.attrs.get("has_image_ids", False):
            self.image_ids = list(f["image_ids"].asstr()[()])
        self.eval_neutral = None
        if f.attrs.get("has_eval_neutral", False):
            self.eval_neutral = [list(map(bool, v)) for v in f["eval_neutral"][()]]
        self.filenames = None
        if f.attrs.get("has_filenames", False) and "filenames" in f:
            self.filenames = list(f["filenames"].asstr()[()])

    # ------------------------------------------------------------------ batches

    def _item_name(self, i: int) -> str:
        if self.filenames is not None:
            return os.fspath(self.filenames[i])
        if self.image_ids is not None:
            return f"image id {self.image_ids[i]}"
        return f"item {i}"

    def _load_image(self, i: int) -> np.ndarray:
        """Image ``i`` as RGB uint8 (a fresh array: transformations may work in place)."""
        if self.images is not None:
            return to_rgb_uint8(self.images[i], self._item_name(i)).copy()
        if self.hdf5_dataset_path is not None:
            f = self.hdf5_dataset
            return f["images"][i].reshape(f["image_shapes"][i])
        if self.filenames is None:
            raise DatasetError("no images: the dataset has neither filenames, images nor HDF5")
        return read_image(self.filenames[i])

    def _check_generate_args(self, batch_size, returns, degenerate_box_handling):
        if self.dataset_size == 0:
            raise DatasetError("Cannot generate batches because you did not load a dataset.")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        unknown = [r for r in returns if r not in RETURNS_ORDER]
        if unknown:
            raise ValueError(f"returns has unknown option(s) {unknown}; valid: {RETURNS_ORDER}")
        _check_choice("degenerate_box_handling", degenerate_box_handling, DEGENERATE_BOX_HANDLING)
        if self.labels is None and any(r in returns for r in _RETURNS_NEEDING_LABELS):
            warnings.warn(
                "The dataset has no labels, so 'original_labels', 'processed_labels', "
                "'encoded_labels', 'matched_anchors' and 'evaluation-neutral' come back as None.",
                stacklevel=3,
            )

    def _prepare_transformations(self, transformations) -> list:
        transformations = list(transformations or [])
        if self.labels is not None:
            for transform in transformations:
                if hasattr(transform, "labels_format"):
                    transform.labels_format = self.labels_format
        return transformations

    def process_batch(
        self,
        batch_indices: Sequence[int],
        transformations: Sequence[Callable] = (),
        label_encoder: Callable | None = None,
        returns: Iterable[str] = ("processed_images", "encoded_labels"),
        keep_images_without_gt: bool = False,
        degenerate_box_handling: str | None = "remove",
    ) -> tuple:
        """Loads, transforms and encodes the items ``batch_indices``: one batch of `generate`.

        Returns:
            A tuple with one entry per option in ``returns``, in `RETURNS_ORDER`.
        """
        returns = set(returns)
        has_labels = self.labels is not None
        n = len(batch_indices)
        images = [self._load_image(i) for i in batch_indices]
        filenames = None
        if self.filenames is not None:
            filenames = [self.filenames[i] for i in batch_indices]
        labels = [labels_array(self.labels[i]) for i in batch_indices] if has_labels else None
        ids = [self.image_ids[i] for i in batch_indices] if self.image_ids is not None else None
        neutral = None
        if self.eval_neutral is not None:
            neutral = [np.asarray(self.eval_neutral[i], dtype=bool) for i in batch_indices]
        original_images = [im.copy() for im in images] if "original_images" in returns else None
        original_labels = None
        if "original_labels" in returns and has_labels:
            original_labels = [y.copy() for y in labels]
        want_inverters = "inverse_transform" in returns
        inverters = [[] for _ in range(n)]

        keep = []
        for j in range(n):
            image = images[j]
            y = labels[j] if has_labels else None
            if has_labels and y.shape[0] == 0 and not keep_images_without_gt:
                continue
            failed = False
            for transform in transformations:
                with_inverter = want_inverters and _accepts(transform, "return_inverter")
                if has_labels:
                    if with_inverter:
                        image, y, inverter = transform(image, y, return_inverter=True)
                        inverters[j].append(_as_inverter_list(inverter))
                    else:
                        image, y = transform(image, y)
                elif with_inverter:
                    image, inverter = transform(image, return_inverter=True)
                    inverters[j].append(_as_inverter_list(inverter))
                else:
                    image = transform(image)
                if image is None:  # e.g. a random patch sampler that found no valid patch
                    failed = True
                    break
            if failed:
                continue
            if has_labels:
                y = labels_array(y, n_columns=len(self.labels_output_format))
                bad = degenerate_mask(y, self.labels_format)
                if bad.any():
                    if degenerate_box_handling == "warn":
                        warnings.warn(
                            f"{self._item_name(batch_indices[j])}: {int(bad.sum())} degenerate "
                            f"box(es) (xmax <= xmin or ymax <= ymin) after the transformations: "
                            f"{y[bad].tolist()}",
                            stacklevel=3,
                        )
                    elif degenerate_box_handling == "remove":
                        if neutral is not None and len(neutral[j]) == len(y):
                            neutral[j] = neutral[j][~bad]
                        y = y[~bad]
                        if y.shape[0] == 0 and not keep_images_without_gt:
                            continue
                labels[j] = y
            images[j] = image
            # last transformation first; a chain's own list is already in application order
            inverters[j] = [inv for stage in reversed(inverters[j]) for inv in stage]
            keep.append(j)

        if not keep:
            raise DegenerateBatchError(
                "Every item of this batch was dropped (no boxes, failed transformations or only "
                f"degenerate boxes): {[self._item_name(i) for i in batch_indices]}"
            )

        def select(values):
            return None if values is None else [values[j] for j in keep]

        batch_x = _stack_images(select(images))
        batch_y = select(labels)
        encoded = matched = None
        if label_encoder is not None and has_labels:
            if "matched_anchors" in returns and _accepts(label_encoder, "diagnostics"):
                encoded, matched = label_encoder(batch_y, diagnostics=True)
            elif _accepts(label_encoder, "diagnostics"):
                encoded = label_encoder(batch_y, diagnostics=False)
            else:
                encoded = label_encoder(batch_y)
        outputs = {
            "processed_images": batch_x,
            "encoded_labels": encoded,
            "matched_anchors": matched,
            "processed_labels": batch_y,
            "filenames": select(filenames),
            "image_ids": select(ids),
            "evaluation-neutral": select(neutral),
            "inverse_transform": select(inverters),
            "original_images": select(original_images),
            "original_labels": select(original_labels),
        }
        return tuple(outputs[key] for key in RETURNS_ORDER if key in returns)

    def generate(
        self,
        batch_size: int = 32,
        shuffle: bool = True,
        transformations: Sequence[Callable] = (),
        label_encoder: Callable | None = None,
        returns: Iterable[str] = ("processed_images", "encoded_labels"),
        keep_images_without_gt: bool = False,
        degenerate_box_handling: str | None = "remove",
        *,
        seed=None,
    ):
        """An endless Python generator of batches.

        Each item is loaded (RGB uint8), dropped if it has no boxes (unless
        ``keep_images_without_gt``), passed through ``transformations`` in order (each a callable
        ``t(image, labels) -> (image, labels)``, or ``t(image) -> image`` for a dataset without
        labels; ``t(..., return_inverter=True)`` also returns an inverter when
        ``'inverse_transform'`` is requested and ``t`` accepts that argument), dropped if a
        transformation returns ``None`` as image, cleaned of degenerate boxes, and finally the
        batch's labels are encoded with ``label_encoder(batch_labels, diagnostics=False)``.

        Args:
            batch_size: items per batch (the last batch of a pass may be smaller).
            shuffle: a new random order on every pass over the dataset.
            transformations: the callables applied to each item in order; a transformation with
                a ``labels_format`` attribute gets the dataset's.
            label_encoder: e.g. an ``SSDInputEncoder``: ``list of (k_i, 5) arrays ->
                (batch, n_anchors, n_classes + 1 + 12)``; with ``'matched_anchors'`` requested
                and a ``diagnostics`` argument, it is called with ``diagnostics=True`` and must
                return ``(encoded, matched_anchors)``.
            returns: a set of `RETURNS_ORDER` names; the batch holds them in that order:
                ``processed_images`` (`(batch, h, w, 3)` uint8, or an object array when sizes
                differ), ``encoded_labels``, ``matched_anchors``, ``processed_labels`` (list of
                `(k_i, 5)`), ``filenames``, ``image_ids``, ``evaluation-neutral`` (list of bool
                arrays), ``inverse_transform`` (per item the list of inverters to apply
                in order to predictions: last transformation first; a chain returning a list
                of inverters contributes that list), ``original_images``, ``original_labels``.
            keep_images_without_gt: keep items that have no boxes.
            degenerate_box_handling: ``'remove'`` boxes with ``xmax <= xmin`` or
                ``ymax <= ymin`` after the transformations, ``'warn'`` about them, or
                ``'keep'``/None to do nothing.
            seed: seed of the shuffling (new argument; None = not reproducible).

        Returns:
            A generator; each ``next()`` gives a tuple as described under ``returns``.
        """
        returns = set(returns)
        self._check_generate_args(batch_size, returns, degenerate_box_handling)
        transformations = self._prepare_transformations(transformations)
        kwargs = {
            "transformations": transformations,
            "label_encoder": label_encoder,
            "returns": returns,
            "keep_images_without_gt": keep_images_without_gt,
            "degenerate_box_handling": degenerate_box_handling,
        }
        return self._batches(batch_size, shuffle, seed, kwargs)

    def _batches(self, batch_size, shuffle, seed, kwargs):
        rng = np.random.default_rng(seed)
        size = self.dataset_size
        order = rng.permutation(size) if shuffle else np.arange(size)
        current = 0
        while True:
            if current >= size:
                current = 0
                if shuffle:
                    order = rng.permutation(size)
            batch_indices = order[current : current + batch_size]
            current += batch_size
            yield self.process_batch(batch_indices, **kwargs)

    def to_py_dataset(
        self,
        batch_size: int = 32,
        shuffle: bool = True,
        transformations: Sequence[Callable] = (),
        label_encoder: Callable | None = None,
        returns: Iterable[str] = ("processed_images", "encoded_labels"),
        keep_images_without_gt: bool = False,
        degenerate_box_handling: str | None = "remove",
        seed: int | None = None,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ):
        """The same batches as `generate`, as a ``keras.utils.PyDataset`` for ``model.fit``.

        One epoch is one pass over the dataset (``ceil(size / batch_size)`` batches). The order
        of epoch ``e`` is a permutation drawn from ``(seed, e)``, so it is the same whatever the
        number of workers; transformations with a random generator are re-seeded from
        ``(seed, e, batch index)`` before each batch (see `data_generator.keras_dataset`).

        Args:
            (as `generate`), and
            seed: seed of the order and of the augmentations (None: drawn once at random).
            workers, use_multiprocessing, max_queue_size: passed to ``keras.utils.PyDataset``.

        Returns:
            A `data_generator.keras_dataset.DataGeneratorPyDataset`.
        """
        from data_generator.keras_dataset import DataGeneratorPyDataset

        return DataGeneratorPyDataset(
            self,
            batch_size=batch_size,
            shuffle=shuffle,
            transformations=transformations,
            label_encoder=label_encoder,
            returns=returns,
            keep_images_without_gt=keep_images_without_gt,
            degenerate_box_handling=degenerate_box_handling,
            seed=seed,
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
        )
