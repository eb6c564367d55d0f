"""Datasets for the app: Pascal VOC folders, CSV files and COCO JSON, as `DataGenerator`s.

Everything here is numpy + OpenCV (no Keras), so errors about missing files come before the
slow import of TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path

AUGMENTATIONS = ("constant", "ssd", "none")
CSV_DEFAULT_FORMAT = ("image_name", "xmin", "xmax", "ymin", "ymax", "class_id")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset path given to the app does not exist or lacks a required file."""


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DatasetNotFoundError(f"{what} not found: {path}")
    return path


def read_classes(root) -> list[str]:
    """The class names of a VOC folder: ``<root>/classes.txt``, one per line, background first."""
    path = Path(root) / "classes.txt"
    if not path.is_file():
        raise DatasetNotFoundError(
            f"no classes given and no {path}; pass --classes background,name1,name2,... "
            "(background first)"
        )
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) < 2:
        raise ValueError(f"{path}: needs the background and at least one class, got {names!r}")
    return names


def voc_split_exists(root, split: str) -> bool:
    return (Path(root) / "ImageSets" / "Main" / f"{split}.txt").is_file()


def load_voc(
    root,
    split: str,
    classes,
    verbose: bool = False,
    bad_items: str = "drop",
    unknown_classes: str = "raise",
    check_images: bool = True,
):
    """A Pascal VOC layout folder (``JPEGImages/``, ``Annotations/``, ``ImageSets/Main/``).

    Args:
        root: the dataset folder.
        split: the image set name (``ImageSets/Main/<split>.txt``).
        classes: class names, background first.
        verbose: progress bars.
        bad_items: ``'drop'`` (default: a missing or undecodable image, a missing or malformed
            annotation is left out and named in the data report) or ``'raise'`` (one
            `DataValidationError` naming them); see `DataGenerator.parse_xml`.
        unknown_classes: ``'raise'`` (default) or ``'drop'`` objects whose class is not in
            ``classes``.
        check_images: decode every image once while loading, so that a damaged file is found
            here instead of crashing a training or evaluation run half-way.

    Returns:
        A `DataGenerator` with labels ``(class_id, xmin, ymin, xmax, ymax)`` in pixels.
    """
    from data_generator.object_detection_2d_data_generator import DataGenerator

    root = _require(Path(root), "dataset folder")
    images = _require(root / "JPEGImages", "image folder")
    annotations = _require(root / "Annotations", "annotation folder")
    image_set = root / "ImageSets" / "Main" / f"{split}.txt"
    if not image_set.is_file():
        sets = sorted(p.stem for p in (root / "ImageSets" / "Main").glob("*.txt"))
        raise DatasetNotFoundError(f"image set file not found: {image_set} (splits there: {sets})")
    dataset = DataGenerator(verbose=verbose)
    dataset.parse_xml(
        images_dirs=[str(images)],
        image_set_filenames=[str(image_set)],
        annotations_dirs=[str(annotations)],
        classes=list(classes),
        verbose=verbose,
        bad_items=bad_items,
        unknown_classes=unknown_classes,
        check_images=check_images,
    )
    if dataset.get_dataset_size() == 0:
        raise ValueError(f"{image_set}: no usable image in this split")
    return dataset


def load_csv(
    images_dir,
    labels_csv,
    input_format=CSV_DEFAULT_FORMAT,
    verbose: bool = False,
    bad_items: str = "drop",
    check_images: bool = True,
):
    """A CSV file with one box per row (see `DataGenerator.parse_csv`; ``bad_items`` and
    ``check_images`` as in `load_voc`)."""
    from data_generator.object_detection_2d_data_generator import DataGenerator

    _require(Path(images_dir), "image folder")
    _require(Path(labels_csv), "label CSV file")
    dataset = DataGenerator(verbose=verbose)
    dataset.parse_csv(
        images_dir=os.fspath(images_dir),
        labels_filename=os.fspath(labels_csv),
        input_format=list(input_format),
        verbose=verbose,
        bad_items=bad_items,
        check_images=check_images,
    )
    return dataset


def load_coco(
    images_dir,
    annotations_json,
    verbose: bool = False,
    bad_items: str = "drop",
    check_images: bool = True,
):
    """A COCO JSON annotation file; returns ``(dataset, classes)`` (background first;
    ``bad_items`` and ``check_images`` as in `load_voc`)."""
    from data_generator.object_detection_2d_data_generator import DataGenerator

    _require(Path(images_dir), "image folder")
    _require(Path(annotations_json), "COCO annotation file")
    dataset = DataGenerator(verbose=verbose)
    dataset.parse_json(
        images_dirs=[os.fspath(images_dir)],
        annotations_filenames=[os.fspath(annotations_json)],
        ground_truth_available=True,
        verbose=verbose,
        bad_items=bad_items,
        check_images=check_images,
    )
    names = dataset.classes_to_names
    classes = ["background"] + [names[i] for i in range(1, len(names) + 1)]
    return dataset, classes


def training_transformations(config, augmentation: str = "constant", seed: int | None = 0):
    """The per-item transforms of a training run, ending at the model's input size.

    Args:
        config: the `RunConfig` (for the input size).
        augmentation: ``'constant'``: resize, then `DataAugmentationConstantInputSize` (the
            original SSD7 recipe); ``'ssd'``: `SSDDataAugmentation` (the original SSD300/512
            recipe: photometric, expand, min-IoU crop, flip, resize); ``'none'``: resize only.
        seed: seed of the augmentation's random generator.

    Returns:
        The list of callables ``(image, labels) -> (image, labels)``.
    """
    from data_generator.data_augmentation_chain_constant_input_size import (
        DataAugmentationConstantInputSize,
    )
    from data_generator.data_augmentation_chain_original_ssd import SSDDataAugmentation
    from data_generator.object_detection_2d_geometric_ops import Resize
    from data_generator.object_detection_2d_image_boxes_validation_utils import BoxFilter
    from data_generator.object_detection_2d_photometric_ops import ConvertTo3Channels

    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {list(AUGMENTATIONS)}, got {augmentation!r}")
    h, w = config.img_height, config.img_width
    if augmentation == "ssd":
        mean = config.model_kwargs.get("subtract_mean") or (123, 117, 104)
        if not isinstance(mean, (list, tuple)):
            mean = (mean, mean, mean)
        return [SSDDataAugmentation(h, w, background=list(mean), rng=seed)]
    # Resizing can shrink a small box to nothing; drop those instead of encoding them.
    resize = Resize(h, w, box_filter=BoxFilter(check_overlap=False, check_min_area=False))
    if augmentation == "none":
        return [ConvertTo3Channels(), resize]
    return [ConvertTo3Channels(), resize, DataAugmentationConstantInputSize(rng=seed)]


def evaluation_resize(config):
    """The transforms that bring an image to the model's input size (no augmentation)."""
    return training_transformations(config, "none")
