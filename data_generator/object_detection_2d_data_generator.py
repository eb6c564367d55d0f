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

import inspect
import os
import pickle
import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from data_generator import hdf5_dataset as hdf5_io
from data_generator import parsers
from data_generator.data_report import DataReport, DatasetError
from data_generator.image_io import ImageReadError, read_image, to_rgb_uint8
from data_generator.labels import (  # noqa: F401 (re-exported: the original's import paths)
    DEFAULT_LABELS_OUTPUT_FORMAT,
    degenerate_mask,
    labels_array,
)
from data_generator.parsers import (  # noqa: F401 (re-exported)
    BAD_ITEM_POLICIES,
    CROWD_POLICIES,
    DEGENERATE_KEPT,
    DEGENERATE_POLICIES,
    OUT_OF_IMAGE_POLICIES,
    UNKNOWN_CLASS_POLICIES,
    VOC_CLASSES,
    ParseOptions,
)
from data_generator.parsers import check_choice as _check_choice

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

DEGENERATE_BOX_HANDLING = ("remove", "warn", "keep", None)


class DegenerateBatchError(Exception):
    """A batch ended up empty (every item was dropped)."""


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


def _encode(label_encoder, batch_labels, with_matched_anchors: bool) -> tuple:
    """``(encoded_labels, matched_anchors)`` of a batch (None for what is not computed)."""
    if label_encoder is None or batch_labels is None:
        return None, None
    if not _accepts(label_encoder, "diagnostics"):
        return label_encoder(batch_labels), None
    if with_matched_anchors:
        encoded, matched_anchors = label_encoder(batch_labels, diagnostics=True)
        return encoded, matched_anchors
    return label_encoder(batch_labels, diagnostics=False), None


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

    # ------------------------------------------------------------------ parsers

    # The parsers live in `data_generator.parsers`; these are the same functions, so
    # ``dataset.parse_xml(...)`` takes the original's positional and keyword arguments.
    parse_xml = parsers.parse_xml
    parse_csv = parsers.parse_csv
    parse_json = parsers.parse_json

    # ------------------------------------------------------------------ HDF5

    # Writing and reading the HDF5 form live in `data_generator.hdf5_dataset`.
    create_hdf5_dataset = hdf5_io.create_hdf5_dataset
    load_hdf5_dataset = hdf5_io.load_hdf5_dataset

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
        items = self._load_batch(batch_indices, returns)
        want_inverters = "inverse_transform" in returns
        keep = []  # the positions of the items that stay in the batch
        for j, i in enumerate(batch_indices):
            kept = self._process_item(
                items, j, transformations, want_inverters, keep_images_without_gt
            ) and self._clean_degenerate(
                items, j, i, degenerate_box_handling, keep_images_without_gt
            )
            if kept:
                keep.append(j)
        if not keep:
            raise DegenerateBatchError(
                "Every item of this batch was dropped (no boxes, failed transformations or only "
                f"degenerate boxes): {[self._item_name(i) for i in batch_indices]}"
            )
        outputs = {
            key: None if values is None else [values[j] for j in keep]
            for key, values in items.items()
        }
        outputs["processed_images"] = _stack_images(outputs["processed_images"])
        outputs["encoded_labels"], outputs["matched_anchors"] = _encode(
            label_encoder, outputs["processed_labels"], "matched_anchors" in returns
        )
        return tuple(outputs[key] for key in RETURNS_ORDER if key in returns)

    def _load_batch(self, batch_indices, returns) -> dict:
        """The items' images, labels, names, ids and flags, by `RETURNS_ORDER` name (the
        images and labels as loaded, to be transformed in place)."""
        has_labels = self.labels is not None
        images = [self._load_image(i) for i in batch_indices]
        labels = [labels_array(self.labels[i]) for i in batch_indices] if has_labels else None
        items = {
            "processed_images": images,
            "processed_labels": labels,
            "filenames": None,
            "image_ids": None,
            "evaluation-neutral": None,
            "inverse_transform": [[] for _ in batch_indices],
            "original_images": None,
            "original_labels": None,
        }
        if self.filenames is not None:
            items["filenames"] = [self.filenames[i] for i in batch_indices]
        if self.image_ids is not None:
            items["image_ids"] = [self.image_ids[i] for i in batch_indices]
        if self.eval_neutral is not None:
            neutral = [np.asarray(self.eval_neutral[i], dtype=bool) for i in batch_indices]
            items["evaluation-neutral"] = neutral
        if "original_images" in returns:
            items["original_images"] = [image.copy() for image in images]
        if "original_labels" in returns and has_labels:
            items["original_labels"] = [y.copy() for y in labels]
        return items

    def _process_item(self, items, j, transformations, want_inverters, keep_without_gt) -> bool:
        """Passes item ``j`` through the transformations; False when it is dropped (no boxes,
        or a transformation returned no image)."""
        image = items["processed_images"][j]
        labels = items["processed_labels"]
        y = None if labels is None else labels[j]
        if y is not None and y.shape[0] == 0 and not keep_without_gt:
            return False
        stages = []
        for transform in transformations:
            inverter = None
            if want_inverters and _accepts(transform, "return_inverter"):
                if y is None:
                    image, inverter = transform(image, return_inverter=True)
                else:
                    image, y, inverter = transform(image, y, return_inverter=True)
                stages.append(_as_inverter_list(inverter))
            elif y is None:
                image = transform(image)
            else:
                image, y = transform(image, y)
            if image is None:  # e.g. a random patch sampler that found no valid patch
                return False
        items["processed_images"][j] = image
        if y is not None:
            labels[j] = labels_array(y, n_columns=len(self.labels_output_format))
        # last transformation first; a chain's own list is already in application order
        items["inverse_transform"][j] = [inv for stage in reversed(stages) for inv in stage]
        return True

    def _clean_degenerate(self, items, j, index, handling, keep_without_gt) -> bool:
        """Warns about or removes item ``j``'s degenerate boxes (and their flags); False when
        removing them leaves no box to keep."""
        labels = items["processed_labels"]
        if labels is None:
            return True
        y = labels[j]
        bad = degenerate_mask(y, self.labels_format)
        if not bad.any():
            return True
        if handling == "warn":
            warnings.warn(
                f"{self._item_name(index)}: {int(bad.sum())} degenerate "
                f"box(es) (xmax <= xmin or ymax <= ymin) after the transformations: "
                f"{y[bad].tolist()}",
                stacklevel=4,
            )
        elif handling == "remove":
            neutral = items["evaluation-neutral"]
            if neutral is not None and len(neutral[j]) == len(y):
                neutral[j] = neutral[j][~bad]
            labels[j] = y[~bad]
            if labels[j].shape[0] == 0 and not keep_without_gt:
                return False
        return True

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
