"""Evaluation inputs as flat numpy arrays: the row formats, input checks and conversions.

Ground truth comes per image (``(k_i, 5)`` label rows, as `DataGenerator.labels` holds it) and
predictions come as the original ssd_keras per-class lists of
``(image_id, confidence, xmin, ymin, xmax, ymax)`` rows; the matching in `eval_utils.voc_ap`
works on flat arrays, one row per box. Every conversion checks its input and names the image,
class and row of a bad value.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np

PRED_FORMAT = {"class_id": 0, "conf": 1, "xmin": 2, "ymin": 3, "xmax": 4, "ymax": 5}
"""Column of each value in a decoded prediction row."""

GT_FORMAT = {"class_id": 0, "xmin": 1, "ymin": 2, "xmax": 3, "ymax": 4}
"""Column of each value in a ground-truth label row."""


def _check_n_classes(n_classes) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    return int(n_classes)


def _check_format(fmt: dict, keys: Sequence[str], name: str) -> dict:
    missing = [k for k in keys if k not in fmt]
    if missing:
        raise ValueError(f"{name} must map {list(keys)} to column indices, missing {missing}")
    return fmt


def _label_array(labels, image_id, gt_format: dict) -> np.ndarray:
    """One image's labels as a float ``(k, >=5)`` array; ``[]`` becomes ``(0, 5)``."""
    array = np.asarray(labels if labels is not None else [], dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, max(gt_format.values()) + 1))
    if array.ndim != 2 or array.shape[1] <= max(gt_format.values()):
        raise ValueError(
            f"labels of image {image_id!r} must have shape (k, {max(gt_format.values()) + 1}), "
            f"got {array.shape}"
        )
    return array


def _flatten_ground_truth_slow(labels, eval_neutral, gt_format, image_ids):
    """Image by image; slower, but names the image in every error."""
    arrays, flags = [], []
    for i, image_labels in enumerate(labels):
        name = image_ids[i] if image_ids is not None else i
        array = _label_array(image_labels, name, gt_format)
        arrays.append(array)
        k = array.shape[0]
        if eval_neutral is None or eval_neutral[i] is None:
            flags.append(np.zeros(k, dtype=bool))
        else:
            image_flags = np.asarray(eval_neutral[i], dtype=bool).reshape(-1)
            if image_flags.shape[0] != k:
                raise ValueError(
                    f"eval_neutral of image {name!r} has {image_flags.shape[0]} flags for {k} boxes"
                )
            flags.append(image_flags)
    width = max(gt_format.values()) + 1
    rows = np.concatenate([a[:, :width] for a in arrays]) if arrays else np.zeros((0, width))
    return rows, np.concatenate(flags) if flags else np.zeros(0, bool)


def _flatten_ground_truth_fast(labels, eval_neutral, gt_format):
    """All images at once; returns None when anything is irregular (the slow path explains)."""
    width = max(gt_format.values()) + 1
    try:
        lengths = np.fromiter(
            (0 if x is None else len(x) for x in labels), dtype=np.int64, count=len(labels)
        )
        nonempty = [x for x in labels if x is not None and len(x)]
        if not nonempty:
            rows = np.zeros((0, width))
        elif all(isinstance(x, np.ndarray) for x in nonempty):
            rows = np.concatenate(nonempty, axis=0).astype(np.float64, copy=False)
        else:
            rows = np.asarray(list(chain.from_iterable(nonempty)), dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] != lengths.sum() or rows.shape[1] < width:
            return None
        if eval_neutral is None:
            return rows, np.zeros(rows.shape[0], dtype=bool)
        if any(f is None for f in eval_neutral):
            return None
        neutral_lengths = np.fromiter(
            (len(f) for f in eval_neutral), dtype=np.int64, count=len(eval_neutral)
        )
        if not np.array_equal(neutral_lengths, lengths):
            return None
        flags = np.fromiter(chain.from_iterable(eval_neutral), dtype=bool, count=rows.shape[0])
        return rows, flags
    except (TypeError, ValueError):
        return None


def flatten_ground_truth(
    labels: Sequence,
    eval_neutral: Sequence | None = None,
    gt_format: dict = GT_FORMAT,
    image_ids: Sequence | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Concatenates per-image ground truth into flat arrays.

    Args:
        labels: one array-like per image, ``(k_i, 5)`` rows laid out as ``gt_format`` (absolute
            pixels); an image without boxes may be ``[]``.
        eval_neutral: ``None`` or one sequence of ``k_i`` booleans per image (VOC "difficult").
        gt_format: column of ``'class_id'``, ``'xmin'``, ``'ymin'``, ``'xmax'``, ``'ymax'``.
        image_ids: only used to name the image in error messages.

    Returns:
        ``(image_index, class_id, boxes, neutral)``: ``(g,)`` int64, ``(g,)`` int64,
        ``(g, 4)`` float64 corners ``(xmin, ymin, xmax, ymax)`` and ``(g,)`` bool.

    Raises:
        ValueError: naming the image whose labels or flags have the wrong shape, or for
            non-integer class ids.
    """
    _check_format(gt_format, ("class_id", "xmin", "ymin", "xmax", "ymax"), "gt_format")
    if eval_neutral is not None and len(eval_neutral) != len(labels):
        raise ValueError(
            f"eval_neutral has {len(eval_neutral)} entries but labels has {len(labels)} images"
        )
    flat = _flatten_ground_truth_fast(labels, eval_neutral, gt_format)
    if flat is None:
        flat = _flatten_ground_truth_slow(labels, eval_neutral, gt_format, image_ids)
    rows, neutral = flat
    lengths = [0 if x is None else len(x) for x in labels]
    image_index = np.repeat(np.arange(len(labels), dtype=np.int64), lengths)
    class_id = rows[:, gt_format["class_id"]]
    if np.any(class_id != np.round(class_id)):
        bad = int(np.flatnonzero(class_id != np.round(class_id))[0])
        name = image_ids[image_index[bad]] if image_ids is not None else int(image_index[bad])
        raise ValueError(
            f"ground-truth class id {class_id[bad]} of image {name!r} is not an integer"
        )
    columns = [gt_format[k] for k in ("xmin", "ymin", "xmax", "ymax")]
    return image_index, class_id.astype(np.int64), rows[:, columns], neutral.astype(bool)


def _image_index_map(image_ids: Sequence) -> dict:
    """``str(image_id) -> position``; the original keyed its ground truth by ``str(image_id)``."""
    index = {str(image_id): i for i, image_id in enumerate(image_ids)}
    if len(index) != len(image_ids):
        seen: dict = {}
        for i, image_id in enumerate(image_ids):
            if str(image_id) in seen:
                raise ValueError(
                    f"image_ids contains {image_id!r} twice (positions {seen[str(image_id)]}, {i})"
                )
            seen[str(image_id)] = i
    return index


def flatten_prediction_results(
    prediction_results: Sequence, image_ids: Sequence, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Concatenates the original per-class prediction lists into flat arrays.

    Args:
        prediction_results: ``n_classes + 1`` lists (index 0, the background, is ignored), list
            ``c`` holding rows ``(image_id, confidence, xmin, ymin, xmax, ymax)`` of class ``c``.
        image_ids: the dataset's image ids; ``str(image_id)`` identifies an image.
        n_classes: number of object classes.

    Returns:
        ``(image_index, class_id, confidence, boxes, position)``: ``(n,)`` int64, ``(n,)`` int64,
        ``(n,)`` float64, ``(n, 4)`` float64 corners, and ``(n,)`` int64, the row's position in
        its class's list.

    Raises:
        ValueError: when there are not ``n_classes + 1`` lists, a row does not have 6 values, or
            a row names an image id that is not in ``image_ids``.
    """
    n_classes = _check_n_classes(n_classes)
    if len(prediction_results) != n_classes + 1:
        raise ValueError(
            f"prediction_results must hold n_classes + 1 = {n_classes + 1} lists (index 0 for the "
            f"background), got {len(prediction_results)}"
        )
    index = _image_index_map(image_ids)
    image_index, class_id, values, position = [], [], [], []
    for c in range(1, n_classes + 1):
        rows = prediction_results[c]
        if len(rows) == 0:
            continue
        for j, row in enumerate(rows):
            if len(row) != 6:
                raise ValueError(
                    f"prediction_results[{c}][{j}] must be (image_id, confidence, xmin, ymin, "
                    f"xmax, ymax), got {row!r}"
                )
        ids, *columns = zip(*rows)  # transposes the rows: 6 tuples
        found = np.fromiter((index.get(str(i), -1) for i in ids), dtype=np.int64, count=len(ids))
        if np.any(found < 0):
            j = int(np.flatnonzero(found < 0)[0])
            raise ValueError(
                f"prediction_results[{c}][{j}] names image id {ids[j]!r}, which is not in the "
                "dataset's image_ids"
            )
        try:
            values.append(np.asarray(columns, dtype=np.float64).T)
        except (TypeError, ValueError):
            raise ValueError(
                f"prediction_results[{c}] holds a non-numeric confidence or coordinate"
            ) from None
        image_index.append(found)
        class_id.append(np.full(len(rows), c, dtype=np.int64))
        position.append(np.arange(len(rows), dtype=np.int64))
    if not values:
        return (
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0),
            np.zeros((0, 4)),
            np.zeros(0, np.int64),
        )
    stacked = np.concatenate(values)
    return (
        np.concatenate(image_index),
        np.concatenate(class_id),
        stacked[:, 0],
        stacked[:, 1:],
        np.concatenate(position),
    )


def prediction_results_from_detections(
    detections: Sequence[np.ndarray],
    image_ids: Sequence,
    n_classes: int,
    pred_format: dict = PRED_FORMAT,
) -> list[list[tuple]]:
    """Regroups per-image decoded detections into the original per-class prediction lists.

    Args:
        detections: one ``(m_i, 6)`` array per image, rows laid out as ``pred_format``
            (``[class_id, conf, xmin, ymin, xmax, ymax]`` by default), absolute pixels.
        image_ids: one id per image.
        n_classes: number of object classes.
        pred_format: column of each value.

    Returns:
        ``n_classes + 1`` lists; list ``c`` holds ``(image_id, conf, xmin, ymin, xmax, ymax)``
        for the class-``c`` detections, in image order then row order.
    """
    n_classes = _check_n_classes(n_classes)
    _check_format(pred_format, ("class_id", "conf", "xmin", "ymin", "xmax", "ymax"), "pred_format")
    if len(detections) != len(image_ids):
        raise ValueError(f"got {len(detections)} detection arrays for {len(image_ids)} image ids")
    cols = [pred_format[k] for k in ("conf", "xmin", "ymin", "xmax", "ymax")]
    results: list[list[tuple]] = [[] for _ in range(n_classes + 1)]
    for image_id, boxes in zip(image_ids, detections):
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.size == 0:
            continue
        for row in boxes.reshape(-1, boxes.shape[-1]):
            c = int(row[pred_format["class_id"]])
            if not 1 <= c <= n_classes:
                raise ValueError(
                    f"a detection of image {image_id!r} has class id {c}, outside 1..{n_classes}"
                )
            results[c].append((image_id, *(float(row[k]) for k in cols)))
    return results
