"""Reading and writing what a Pascal VOC evaluation needs, without a model or a DataGenerator.

- `read_voc_ground_truth`: ``Annotations/<id>.xml`` -> per-image labels and "difficult" flags.
- `read_detection_folder`: one ``<id>.txt`` per image with lines
  ``class_index confidence xmin ymin xmax ymax`` -> the per-class prediction lists.
- `write_voc_results` / `read_voc_results`: the VOC devkit's results files, one per class
  (``comp3_det_test_<class>.txt``) with lines ``image_id confidence xmin ymin xmax ymax``.

Every parse error names the file, the line (or XML field) and the offending value.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_generator.voc_xml import BOX_FIELDS, VocObject, VocXmlError, read_voc_xml


def read_image_set(image_set_file: str | os.PathLike) -> list[str]:
    """Image ids listed in an ``ImageSets/Main/<split>.txt`` file (first token of each line)."""
    path = Path(image_set_file)
    ids = []
    for line in path.read_text().splitlines():
        if line.strip():
            ids.append(line.split()[0])
    return ids


def read_voc_annotation(
    xml_file: str | os.PathLike, classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """One VOC annotation file, read by the reader `DataGenerator.parse_xml` uses
    (`data_generator.voc_xml.read_voc_xml`).

    Args:
        xml_file: path of ``<id>.xml``.
        classes: class names indexed by class id (index 0 the background).

    Returns:
        ``(labels, difficult)``: ``(k, 5)`` float64 rows ``[class_id, xmin, ymin, xmax, ymax]``
        in XML object order, and ``(k,)`` bool "difficult" flags: ``<difficult>`` read as the
        original read it (``int(text) != 0``; ``'00'`` and ``'0.0'`` are not difficult), a
        missing or empty tag as 0, and a value that is not a number as 0 with a warning naming
        the file, the object and the value (as `DataGenerator.parse_xml` does).

    Raises:
        ValueError: for an object whose name is not in ``classes`` or a malformed box.
    """
    path = Path(xml_file)
    try:
        annotation = read_voc_xml(path)
    except VocXmlError as error:
        raise ValueError(f"{path}: not valid XML ({error})") from None
    class_index = {name: i for i, name in enumerate(classes)}
    rows, difficult = [], []
    for k, obj in enumerate(annotation.objects):
        if obj.name not in class_index:
            raise ValueError(f"{path}: object name {obj.name!r} is not in classes")
        if obj.box is None:
            raise ValueError(f"{path}: {_box_problem(obj)}")
        if "difficult" in obj.flag_errors:
            warnings.warn(
                f"{path}: object {k} ({obj.name}): <difficult> is not a number "
                f"({obj.flag_errors['difficult']}); read as 0 (not difficult)",
                stacklevel=2,
            )
        rows.append([class_index[obj.name], *(obj.box[key] for key in BOX_FIELDS)])
        difficult.append(obj.difficult != 0)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5), np.asarray(difficult, dtype=bool)


def _box_problem(obj: VocObject) -> str:
    if obj.bad_field == "bndbox":
        return "an <object> has no bndbox"
    if not obj.bad_text:
        return f"an <object> has no bndbox/{obj.bad_field}"
    return f"bndbox/{obj.bad_field} is not a number: {obj.bad_text!r}"


def read_voc_ground_truth(
    annotations_dir: str | os.PathLike,
    classes: Sequence[str],
    image_ids: Sequence[str] | str | os.PathLike,
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Ground truth of a VOC-layout dataset.

    Args:
        annotations_dir: the ``Annotations`` folder.
        classes: class names indexed by class id (``['background', 'aeroplane', ...]``).
        image_ids: a list of ids, or the path of an image-set file listing them.

    Returns:
        ``(labels, eval_neutral, image_ids)``: per image a ``(k, 5)`` label array and a ``(k,)``
        bool array of "difficult" flags, in image-id order, and the ids.

    Raises:
        FileNotFoundError: naming the missing annotation file.
    """
    if isinstance(image_ids, (str, os.PathLike)):
        image_ids = read_image_set(image_ids)
    folder = Path(annotations_dir)
    labels, neutral = [], []
    for image_id in image_ids:
        path = folder / f"{image_id}.xml"
        if not path.is_file():
            raise FileNotFoundError(f"annotation file {path} (image id {image_id!r}) not found")
        boxes, difficult = read_voc_annotation(path, classes)
        labels.append(boxes)
        neutral.append(difficult)
    return labels, neutral, list(image_ids)


def _parse_row(fields: list[str], path: Path, line_number: int, n_values: int) -> list[float]:
    if len(fields) != n_values:
        raise ValueError(
            f"{path}, line {line_number}: expected {n_values} values, got {len(fields)}: "
            f"{' '.join(fields)!r}"
        )
    values = []
    for field in fields:
        try:
            values.append(float(field))
        except ValueError:
            raise ValueError(f"{path}, line {line_number}: {field!r} is not a number") from None
    return values


def read_detection_file(
    path: str | os.PathLike, n_classes: int | None = None, class_offset: int = 1
) -> np.ndarray:
    """One image's detections: lines ``class_index confidence xmin ymin xmax ymax``.

    Args:
        path: the text file.
        n_classes: if given, class ids outside ``1..n_classes`` raise.
        class_offset: added to ``class_index`` to get the class id (1 when the file's classes
            are 0-based indices into the names without the background).

    Returns:
        ``(m, 6)`` float64 rows ``[class_id, conf, xmin, ymin, xmax, ymax]`` in file order.
    """
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        row = _parse_row(fields, path, number, 6)
        if row[0] != int(row[0]):
            raise ValueError(f"{path}, line {number}: class index {fields[0]!r} is not an integer")
        row[0] = int(row[0]) + class_offset
        if n_classes is not None and not 1 <= row[0] <= n_classes:
            raise ValueError(
                f"{path}, line {number}: class index {fields[0]} gives class id {row[0]}, "
                f"outside 1..{n_classes}"
            )
        rows.append(row)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 6)


def read_detection_folder(
    folder: str | os.PathLike,
    image_ids: Sequence[str],
    n_classes: int,
    class_offset: int = 1,
    missing: str = "empty",
) -> list[list[tuple]]:
    """Detections from one ``<image_id>.txt`` per image, as the per-class prediction lists.

    Args:
        folder: the folder of detection files.
        image_ids: the images to read, in order.
        n_classes: number of object classes.
        class_offset: added to each file's class index to get the class id.
        missing: ``'empty'`` (an image without a file has no detections) or ``'error'``.

    Returns:
        ``n_classes + 1`` lists (index 0 empty); list ``c`` holds
        ``(image_id, conf, xmin, ymin, xmax, ymax)`` in image order, then file order.
    """
    from eval_utils.average_precision_evaluator import prediction_results_from_detections

    if missing not in ("empty", "error"):
        raise ValueError(f"missing must be 'empty' or 'error', got {missing!r}")
    folder = Path(folder)
    detections = []
    for image_id in image_ids:
        path = folder / f"{image_id}.txt"
        if not path.is_file():
            if missing == "error":
                raise FileNotFoundError(f"detection file {path} (image id {image_id!r}) not found")
            detections.append(np.zeros((0, 6)))
            continue
        detections.append(read_detection_file(path, n_classes, class_offset))
    return prediction_results_from_detections(detections, list(image_ids), n_classes)


def _class_suffix(classes: Sequence[str] | None, class_id: int) -> str:
    return f"{class_id:04d}" if classes is None else str(classes[class_id])


def _format_image_id(image_id) -> str:
    if isinstance(image_id, (int, np.integer)):
        return f"{int(image_id):06d}"
    return str(image_id)


def write_voc_results(
    prediction_results: Sequence,
    out_file_prefix: str | os.PathLike,
    classes: Sequence[str] | None = None,
) -> list[str]:
    """Writes the VOC devkit's results files, ``<prefix><class>.txt``, one per class.

    Lines are ``image_id confidence xmin ymin xmax ymax`` with the confidence rounded to 4
    decimals; integer ids are zero-padded to 6 digits. Class 0 (background) is skipped.

    Returns:
        The paths written, for classes ``1..len(prediction_results) - 1``.
    """
    if classes is not None and len(classes) < len(prediction_results):
        raise ValueError(
            f"classes has {len(classes)} names for {len(prediction_results)} classes "
            "(including the background)"
        )
    paths = []
    for class_id in range(1, len(prediction_results)):
        path = f"{os.fspath(out_file_prefix)}{_class_suffix(classes, class_id)}.txt"
        with open(path, "w") as f:
            for image_id, conf, *box in prediction_results[class_id]:
                values = " ".join(str(float(v)) for v in box)
                f.write(f"{_format_image_id(image_id)} {round(float(conf), 4)} {values}\n")
        paths.append(path)
    return paths


def read_voc_results(
    out_file_prefix: str | os.PathLike,
    n_classes: int,
    classes: Sequence[str] | None = None,
) -> list[list[tuple]]:
    """Reads results files written by `write_voc_results` (or the VOC devkit format).

    Returns:
        ``n_classes + 1`` lists of ``(image_id, conf, xmin, ymin, xmax, ymax)``; image ids are
        strings; a missing file means no detections for that class.
    """
    results: list[list[tuple]] = [[]]
    for class_id in range(1, n_classes + 1):
        path = Path(f"{os.fspath(out_file_prefix)}{_class_suffix(classes, class_id)}.txt")
        rows: list[tuple] = []
        if path.is_file():
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 6:
                    raise ValueError(
                        f"{path}, line {number}: expected 6 values, got {len(fields)}: {line!r}"
                    )
                values = _parse_row(fields[1:], path, number, 5)
                rows.append((fields[0], *values))
        results.append(rows)
    return results
