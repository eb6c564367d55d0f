"""A `DataGenerator`'s dataset as one HDF5 file: `create_hdf5_dataset` and `load_hdf5_dataset`.

Both are `DataGenerator` methods of the same names (the class binds them, so
``dataset.create_hdf5_dataset(...)`` is ``create_hdf5_dataset(dataset, ...)``).

Layout (compatible with the original): datasets ``images`` (vlen uint8, flattened),
``image_shapes`` (n, 3) int32, ``labels`` (vlen float64, flattened; the original used int32),
``label_shapes`` (n, 2), ``image_ids`` (vlen str), ``eval_neutral`` (vlen bool), ``filenames``
(vlen str, new); attributes ``has_labels``, ``has_image_ids``, ``has_eval_neutral``,
``has_filenames``, ``variable_image_size``.
"""

from __future__ import annotations

import os

import numpy as np
from tqdm.auto import tqdm

from data_generator.data_report import DataReport, DatasetError
from data_generator.image_io import ImageReadError
from data_generator.labels import labels_array
from data_generator.parsers import BAD_ITEM_POLICIES, check_choice


def create_hdf5_dataset(
    dataset,
    file_path: str = "dataset.h5",
    resize=False,
    variable_image_size: bool = True,
    verbose: bool = True,
    *,
    bad_items: str = "drop",
) -> None:
    """Writes the dataset (images, labels, ids, eval_neutral, filenames) to one HDF5 file.

    Afterwards this generator reads from that file (as if constructed with
    ``hdf5_dataset_path=file_path``). The layout is in `data_generator.hdf5_dataset`.

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
    import h5py

    check_choice("bad_items", bad_items, BAD_ITEM_POLICIES)
    if dataset.dataset_size == 0:
        raise DatasetError("create_hdf5_dataset: no dataset loaded")
    if resize and (len(resize) != 2 or min(resize) <= 0):
        raise ValueError(f"resize must be False or (height, width), got {resize!r}")
    report = DataReport("create_hdf5_dataset")
    action = "dropped image" if bad_items == "drop" else "error"
    file_path = os.fspath(file_path)
    with h5py.File(file_path, "w") as f:
        columns = _create_datasets(f, dataset, bool(variable_image_size and not resize))
        n_written = 0
        for i in tqdm(
            range(dataset.dataset_size), desc="Creating HDF5 dataset", disable=not verbose
        ):
            try:
                image = dataset._load_image(i)
            except ImageReadError as error:
                report.add(dataset._item_name(i), f"unreadable image ({error})", action)
                continue
            labels = None
            if dataset.labels is not None:
                labels = labels_array(dataset.labels[i]).astype(np.float64)
            if resize:
                image, labels = _resized(image, labels, resize, dataset.labels_format)
            _write_item(columns, n_written, dataset, i, image, labels)
            n_written += 1
        for column in f.values():
            column.resize(n_written, axis=0)
    if bad_items == "raise" and report:
        os.remove(file_path)
        report.raise_errors()
    report.emit()
    dataset.data_report = report
    dataset.hdf5_dataset_path = file_path
    dataset._hdf5 = None
    load_hdf5_dataset(dataset, verbose=verbose)


def _create_datasets(f, dataset, variable_image_size: bool) -> dict:
    """The file's attributes and its (resizable) datasets, by name; absent lists get none."""
    import h5py

    f.attrs["has_labels"] = dataset.labels is not None
    f.attrs["has_image_ids"] = dataset.image_ids is not None
    f.attrs["has_eval_neutral"] = dataset.eval_neutral is not None
    f.attrs["has_filenames"] = dataset.filenames is not None
    f.attrs["variable_image_size"] = variable_image_size
    size = dataset.dataset_size
    string = h5py.string_dtype()
    columns = {  # name: (shape after the item axis, dtype, present)
        "images": ((), h5py.vlen_dtype(np.uint8), True),
        "image_shapes": ((3,), np.int32, True),
        "labels": ((), h5py.vlen_dtype(np.float64), dataset.labels is not None),
        "label_shapes": ((2,), np.int32, dataset.labels is not None),
        "image_ids": ((), string, dataset.image_ids is not None),
        "eval_neutral": ((), h5py.vlen_dtype(np.bool_), dataset.eval_neutral is not None),
        "filenames": ((), string, dataset.filenames is not None),
    }
    return {
        name: f.create_dataset(name, shape=(size, *tail), maxshape=(None, *tail), dtype=dtype)
        for name, (tail, dtype, present) in columns.items()
        if present
    }


def _resized(image, labels, resize, labels_format):
    """The image resized to ``resize = (height, width)`` (bilinear), its labels scaled."""
    import cv2

    height, width = image.shape[:2]
    image = cv2.resize(image, (resize[1], resize[0]), interpolation=cv2.INTER_LINEAR)
    if labels is not None and labels.size:
        labels[:, [labels_format["xmin"], labels_format["xmax"]]] *= resize[1] / width
        labels[:, [labels_format["ymin"], labels_format["ymax"]]] *= resize[0] / height
    return image, labels


def _write_item(columns: dict, j: int, dataset, i: int, image, labels) -> None:
    """Writes item ``i`` of the dataset as row ``j`` of the file."""
    columns["images"][j] = image.reshape(-1)
    columns["image_shapes"][j] = image.shape
    if labels is not None:
        columns["labels"][j] = labels.reshape(-1)
        columns["label_shapes"][j] = labels.shape
    if "image_ids" in columns:
        columns["image_ids"][j] = str(dataset.image_ids[i])
    if "eval_neutral" in columns:
        neutral = np.asarray(dataset.eval_neutral[i], dtype=np.bool_).reshape(-1)
        columns["eval_neutral"][j] = neutral
    if "filenames" in columns:
        columns["filenames"][j] = os.fspath(dataset.filenames[i])


def load_hdf5_dataset(dataset, verbose: bool = True) -> None:
    """Loads labels, ids, eval_neutral and filenames from ``self.hdf5_dataset_path``.

    Images stay in the file (read per batch) unless ``load_images_into_memory``.
    """
    f = dataset.hdf5_dataset
    for key in ("images", "image_shapes"):
        if key not in f:
            raise DatasetError(f"{dataset.hdf5_dataset_path}: no {key!r} dataset in the file")
    dataset._set_size(len(f["images"]))
    progress = {"disable": not verbose}
    dataset.images = None
    if dataset.load_images_into_memory:
        images, shapes = f["images"], f["image_shapes"][()]
        dataset.images = [
            images[i].reshape(shapes[i])
            for i in tqdm(range(dataset.dataset_size), desc="Loading images", **progress)
        ]
    dataset.labels = None
    if f.attrs.get("has_labels", False):
        labels, shapes = f["labels"], f["label_shapes"][()]
        dataset.labels = [
            labels_array(labels[i].reshape(shapes[i]))
            for i in tqdm(range(dataset.dataset_size), desc="Loading labels", **progress)
        ]
    dataset.image_ids = None
    if f.attrs.get("has_image_ids", False):
        dataset.image_ids = list(f["image_ids"].asstr()[()])
    dataset.eval_neutral = None
    if f.attrs.get("has_eval_neutral", False):
        dataset.eval_neutral = [list(map(bool, v)) for v in f["eval_neutral"][()]]
    dataset.filenames = None
    if f.attrs.get("has_filenames", False) and "filenames" in f:
        dataset.filenames = list(f["filenames"].asstr()[()])
