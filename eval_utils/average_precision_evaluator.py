"""Pascal VOC average precision: pure numpy functions and the model-driven `Evaluator`.

The matching rule is the one of the VOC devkit's ``VOCevaldet.m``:

1. the detections of a class are sorted by descending confidence;
2. each detection takes the ground-truth box of the same class in the same image with the
   highest IoU (the first such box on ties), whether or not that box is already taken;
3. IoU below ``matching_iou_threshold`` (or no box of that class in the image) -> false positive;
4. the box is "difficult" (evaluation-neutral) and ``ignore_neutral_boxes`` -> neither TP nor FP
   (the detection keeps its row in the cumulative arrays, with 0 in both);
5. otherwise the first detection to take a box is a true positive, later ones are false positives
   (duplicates).

With ``border_pixels='include'`` (VOC's rule, the default) a box ``[xmin, ymin, xmax, ymax]`` in
integer pixels is ``xmax - xmin + 1`` wide, in the intersection and in both areas alike.

Precision is ``cumTP / (cumTP + cumFP)`` (0 where both are 0), recall is ``cumTP / num_gt``, where
difficult boxes are not counted in ``num_gt`` when ``ignore_neutral_boxes``. Average precision:

- ``'sample'``: VOC2007 ``num_recall_points``-point interpolation, the mean over
  ``t in linspace(0, 1, num_recall_points)`` of the highest precision at recall ``>= t``
  (0 where recall never reaches ``t``);
- ``'integrate'``: VOC2010+ all-point AP, the area under the monotone (non-increasing)
  precision envelope from recall 0 to the last recall reached.

Classes without any (non-neutral) ground-truth box have an undefined AP: it is reported as NaN
and the mean AP is taken over the other classes, with a warning naming the excluded classes.

Differences from the original ssd_keras (its known bugs, fixed here):

- ``match_predictions(verbose=False)`` matched only the first prediction of each class;
  here ``verbose`` only controls printing.
- A class with zero predictions skipped its cumulative arrays, shifting every later class and
  ending in an IndexError; here every class has (possibly empty) arrays and AP 0 if it has ground
  truth.
- ``'integrate'`` dropped the area between recall 0 and the first recall reached (a perfect
  detector on a single object scored 0.0); here it is the VOC2010+ formula.
- ``bounding_box_utils.iou`` left the +1 out of the intersection with ``'include'``; the
  foundation's ``iou`` applies it everywhere.
- Image ids are no longer truncated to the length of the first id + 6 characters, and a prediction
  for an image id that is not in the dataset raises a ValueError naming it.

Kept: the original's public names, arguments and returned lists (indexed by class id, index 0 for
the background), the 11-point ``linspace`` thresholds, box coordinates rounded to 0.1 px when
collected from a model.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from itertools import chain
from typing import Any, NamedTuple

import numpy as np

from bounding_box_utils.bounding_box_utils import border_offset, iou

PRED_FORMAT = {"class_id": 0, "conf": 1, "xmin": 2, "ymin": 3, "xmax": 4, "ymax": 5}
"""Column of each value in a decoded prediction row."""

GT_FORMAT = {"class_id": 0, "xmin": 1, "ymin": 2, "xmax": 3, "ymax": 4}
"""Column of each value in a ground-truth label row."""

AP_MODES = ("sample", "integrate")
SORTING_ALGORITHMS = ("quicksort", "mergesort", "heapsort", "stable")


class MatchResult(NamedTuple):
    """Per-class outcome of matching, every list indexed by class id (index 0 is empty).

    Attributes:
        true_positives: ``(n_c,)`` int arrays, 1 where the c-th class's prediction (in descending
            confidence order) is a true positive.
        false_positives: ``(n_c,)`` int arrays, likewise for false positives. A prediction that
            matched a neutral box is 0 in both.
        cumulative_true_positives: ``(n_c,)`` cumulative sums of ``true_positives``.
        cumulative_false_positives: ``(n_c,)`` cumulative sums of ``false_positives``.
        order: ``(n_c,)`` int arrays, the positions of the sorted predictions in the input
            (in the class's list for `match_predictions`, in the flat arrays for
            `match_detection_arrays`).
        confidences: ``(n_c,)`` float arrays, the sorted confidences.
    """

    true_positives: list
    false_positives: list
    cumulative_true_positives: list
    cumulative_false_positives: list
    order: list
    confidences: list


# ---------------------------------------------------------------------------------------------
# Input checks and conversion to flat arrays
# ---------------------------------------------------------------------------------------------


def _check_n_classes(n_classes) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    return int(n_classes)


def _check_format(fmt: dict, keys: Sequence[str], name: str) -> dict:
    missing = [k for k in keys if k not in fmt]
    if missing:
        raise ValueError(f"{name} must map {list(keys)} to column indices, missing {missing}")
    return fmt


def _check_matching_args(matching_iou_threshold, border_pixels, sorting_algorithm) -> None:
    if not 0.0 <= float(matching_iou_threshold) <= 1.0:
        raise ValueError(
            f"matching_iou_threshold must be in [0, 1], got {matching_iou_threshold!r}"
        )
    border_offset(border_pixels)
    if sorting_algorithm not in SORTING_ALGORITHMS:
        raise ValueError(
            f"sorting_algorithm must be one of {list(SORTING_ALGORITHMS)}, "
            f"got {sorting_algorithm!r}"
        )


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


# ---------------------------------------------------------------------------------------------
# Counting, matching, precision/recall, average precision
# ---------------------------------------------------------------------------------------------


def count_ground_truth(
    labels: Sequence,
    n_classes: int,
    eval_neutral: Sequence | None = None,
    ignore_neutral_boxes: bool = True,
    gt_format: dict = GT_FORMAT,
) -> np.ndarray:
    """Number of ground-truth boxes per class, ``(n_classes + 1,)`` int64 (index 0: background).

    Neutral ("difficult") boxes are left out when ``ignore_neutral_boxes`` and flags are given.

    Raises:
        ValueError: when a class id is outside ``0..n_classes``.
    """
    n_classes = _check_n_classes(n_classes)
    _, class_id, _, neutral = flatten_ground_truth(labels, eval_neutral, gt_format)
    return _count_flat(class_id, neutral, n_classes, ignore_neutral_boxes)


def _count_flat(class_id, neutral, n_classes: int, ignore_neutral_boxes: bool) -> np.ndarray:
    bad = (class_id < 0) | (class_id > n_classes)
    if np.any(bad):
        raise ValueError(f"ground-truth class id {int(class_id[bad][0])} is outside 0..{n_classes}")
    if ignore_neutral_boxes:
        class_id = class_id[~neutral]
    return np.bincount(class_id, minlength=n_classes + 1).astype(np.int64)


def _best_overlaps(
    det_image: np.ndarray,
    det_boxes: np.ndarray,
    gt_image: np.ndarray,
    gt_boxes: np.ndarray,
    border_pixels: str,
) -> tuple[np.ndarray, np.ndarray]:
    """For each detection, the highest IoU with a box of ``gt_*`` in the same image.

    ``gt_image`` must be sorted (stable, so boxes of one image keep their order).

    Returns:
        ``(best_iou, best_gt)``: ``(n,)`` float64 (0 where the image has no box) and ``(n,)``
        int64 positions into ``gt_*`` (the first box of highest IoU; -1 where there is none).
    """
    n = det_image.shape[0]
    best_iou = np.zeros(n)
    best_gt = np.full(n, -1, dtype=np.int64)
    starts = np.searchsorted(gt_image, det_image, side="left")
    counts = np.searchsorted(gt_image, det_image, side="right") - starts
    total = int(counts.sum())
    if total == 0:
        return best_iou, best_gt
    # One row per (detection, candidate box) pair, grouped by detection, boxes in input order.
    pair_det = np.repeat(np.arange(n), counts)
    first_pair = np.cumsum(counts) - counts
    pair_gt = np.repeat(starts - first_pair, counts) + np.arange(total)
    overlaps = iou(
        det_boxes[pair_det],
        gt_boxes[pair_gt],
        coords="corners",
        mode="element-wise",
        border_pixels=border_pixels,
    )
    has_gt = counts > 0
    best_iou[has_gt] = np.maximum.reduceat(overlaps, first_pair[has_gt])
    # First pair of each detection reaching its maximum = np.argmax's tie-break (VOC's `max`).
    is_max = np.flatnonzero(overlaps == best_iou[pair_det])
    dets, first = np.unique(pair_det[is_max], return_index=True)
    best_gt[dets] = pair_gt[is_max[first]]
    return best_iou, best_gt


def match_detection_arrays(
    det_image_index: np.ndarray,
    det_class_id: np.ndarray,
    det_confidence: np.ndarray,
    det_boxes: np.ndarray,
    gt_image_index: np.ndarray,
    gt_class_id: np.ndarray,
    gt_boxes: np.ndarray,
    gt_neutral: np.ndarray | None,
    n_classes: int,
    matching_iou_threshold: float = 0.5,
    border_pixels: str = "include",
    ignore_neutral_boxes: bool = True,
    sorting_algorithm: str = "quicksort",
) -> MatchResult:
    """Matches detections to ground truth by the VOCevaldet rule, on flat arrays (vectorised).

    Every decision of the sequential VOC loop depends only on earlier detections *of the same
    box*: a detection takes its highest-IoU box regardless of whether it is taken, so the true
    positive for a box is simply the first detection (in confidence order) that takes it. This
    lets the whole dataset be matched with array operations, in ``O(n log n + pairs)`` where
    ``pairs`` is the number of (detection, same-class box in the same image) pairs.

    Args:
        det_image_index: ``(n,)`` image position of each detection.
        det_class_id: ``(n,)`` class id of each detection, ``1..n_classes``.
        det_confidence: ``(n,)`` confidences.
        det_boxes: ``(n, 4)`` corners ``(xmin, ymin, xmax, ymax)``, absolute pixels.
        gt_image_index: ``(g,)`` image position of each ground-truth box.
        gt_class_id: ``(g,)`` class id of each box.
        gt_boxes: ``(g, 4)`` corners.
        gt_neutral: ``(g,)`` bool, evaluation-neutral ("difficult") boxes, or None.
        n_classes: number of object classes.
        matching_iou_threshold: a detection matches a box at IoU ``>=`` this.
        border_pixels: ``'include'`` (VOC: +1 pixel), ``'half'`` or ``'exclude'``.
        ignore_neutral_boxes: if True, detections taking a neutral box are neither TP nor FP.
        sorting_algorithm: ``kind`` for ``np.argsort`` of the confidences (``'stable'`` /
            ``'mergesort'`` keep input order on ties, as the VOC devkit does).

    Returns:
        A `MatchResult`; ``order[c]`` indexes the flat detection arrays.
    """
    n_classes = _check_n_classes(n_classes)
    _check_matching_args(matching_iou_threshold, border_pixels, sorting_algorithm)
    det_image_index = np.asarray(det_image_index, dtype=np.int64).reshape(-1)
    det_class_id = np.asarray(det_class_id, dtype=np.int64).reshape(-1)
    det_confidence = np.asarray(det_confidence, dtype=np.float64).reshape(-1)
    det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    gt_image_index = np.asarray(gt_image_index, dtype=np.int64).reshape(-1)
    gt_class_id = np.asarray(gt_class_id, dtype=np.int64).reshape(-1)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    if gt_neutral is None:
        gt_neutral = np.zeros(gt_class_id.shape[0], dtype=bool)
    gt_neutral = np.asarray(gt_neutral, dtype=bool).reshape(-1)
    n, g = det_image_index.shape[0], gt_image_index.shape[0]
    for name, arr, size in (
        ("det_class_id", det_class_id, n),
        ("det_confidence", det_confidence, n),
        ("det_boxes", det_boxes, n),
        ("gt_class_id", gt_class_id, g),
        ("gt_boxes", gt_boxes, g),
        ("gt_neutral", gt_neutral, g),
    ):
        if arr.shape[0] != size:
            raise ValueError(f"{name} has {arr.shape[0]} rows, expected {size}")
    if np.any(np.isnan(det_confidence)):
        raise ValueError(
            f"det_confidence is NaN at position {int(np.isnan(det_confidence).argmax())}"
        )
    outside = (det_class_id < 1) | (det_class_id > n_classes)
    if np.any(outside):
        k = int(outside.argmax())
        raise ValueError(
            f"det_class_id[{k}] = {det_class_id[k]} is outside the object classes 1..{n_classes}"
        )

    # Group detections and boxes by class once (stable, so input order survives within a class).
    det_by_class = np.argsort(det_class_id, kind="stable")
    det_bounds = np.searchsorted(det_class_id[det_by_class], np.arange(n_classes + 2))
    gt_key = gt_class_id * (int(gt_image_index.max(initial=0)) + 1) + gt_image_index
    gt_by_key = np.argsort(gt_key, kind="stable")
    gt_bounds = np.searchsorted(gt_class_id[gt_by_key], np.arange(n_classes + 2))

    # Index 0 (background) holds empty arrays, as the original's lists did.
    tps, fps, ctps, cfps, orders = ([np.zeros(0, dtype=np.int64)] for _ in range(5))
    confs = [np.zeros(0)]
    for c in range(1, n_classes + 1):
        dets = det_by_class[det_bounds[c] : det_bounds[c + 1]]
        dets = dets[np.argsort(-det_confidence[dets], kind=sorting_algorithm)]
        gts = gt_by_key[gt_bounds[c] : gt_bounds[c + 1]]  # sorted by image, input order inside
        best_iou, best_gt = _best_overlaps(
            det_image_index[dets],
            det_boxes[dets],
            gt_image_index[gts],
            gt_boxes[gts],
            border_pixels,
        )
        # As VOCevaldet, a detection overlapping nothing is never a match, even at threshold 0.
        matched = (best_iou >= matching_iou_threshold) & (best_iou > 0)
        neutral_hit = np.zeros(dets.shape[0], dtype=bool)
        if ignore_neutral_boxes:
            neutral_hit[matched] = gt_neutral[gts[best_gt[matched]]]
        candidates = np.flatnonzero(matched & ~neutral_hit)
        tp = np.zeros(dets.shape[0], dtype=np.int64)
        _, first = np.unique(best_gt[candidates], return_index=True)
        tp[candidates[first]] = 1
        fp = ((tp == 0) & ~neutral_hit).astype(np.int64)
        tps.append(tp)
        fps.append(fp)
        ctps.append(np.cumsum(tp))
        cfps.append(np.cumsum(fp))
        orders.append(dets)
        confs.append(det_confidence[dets])
    return MatchResult(tps, fps, ctps, cfps, orders, confs)


def match_predictions(
    prediction_results: Sequence,
    labels: Sequence,
    image_ids: Sequence,
    n_classes: int,
    eval_neutral: Sequence | None = None,
    ignore_neutral_boxes: bool = True,
    matching_iou_threshold: float = 0.5,
    border_pixels: str = "include",
    sorting_algorithm: str = "quicksort",
    gt_format: dict = GT_FORMAT,
) -> MatchResult:
    """Matches the original per-class prediction lists to per-image ground truth (VOCevaldet).

    Args:
        prediction_results: ``n_classes + 1`` lists of ``(image_id, conf, xmin, ymin, xmax,
            ymax)`` rows (index 0 ignored), as `Evaluator.predict_on_dataset` produces.
        labels: per image ``(k_i, 5)`` ground truth laid out as ``gt_format``.
        image_ids: one id per image; predictions refer to images by ``str(image_id)``.
        n_classes: number of object classes.
        eval_neutral: per image ``k_i`` booleans ("difficult"), or None.
        ignore_neutral_boxes: see `match_detection_arrays`.
        matching_iou_threshold: IoU needed for a match (``>=``).
        border_pixels: ``'include'`` (VOC), ``'half'`` or ``'exclude'``.
        sorting_algorithm: ``np.argsort`` kind for the confidences.
        gt_format: column of each value in a label row.

    Returns:
        A `MatchResult`; ``order[c]`` indexes ``prediction_results[c]``.

    Example:
        >>> labels = [np.array([[1, 10, 10, 50, 50]])]
        >>> preds = [[], [("a", 0.9, 10, 10, 50, 50), ("a", 0.8, 11, 11, 50, 50)]]
        >>> match_predictions(preds, labels, ["a"], n_classes=1).true_positives[1]
        array([1, 0])
    """
    if len(labels) != len(image_ids):
        raise ValueError(f"got {len(labels)} label arrays for {len(image_ids)} image ids")
    ground_truth = flatten_ground_truth(labels, eval_neutral, gt_format, image_ids)
    return _match_lists(
        prediction_results,
        image_ids,
        n_classes,
        ground_truth,
        matching_iou_threshold=matching_iou_threshold,
        border_pixels=border_pixels,
        ignore_neutral_boxes=ignore_neutral_boxes,
        sorting_algorithm=sorting_algorithm,
    )


def _match_lists(prediction_results, image_ids, n_classes, ground_truth, **kwargs) -> MatchResult:
    """`match_predictions` with the ground truth already flattened."""
    d_img, d_cls, d_conf, d_boxes, d_pos = flatten_prediction_results(
        prediction_results, image_ids, n_classes
    )
    result = match_detection_arrays(
        d_img, d_cls, d_conf, d_boxes, *ground_truth, n_classes, **kwargs
    )
    return result._replace(order=[d_pos[o] for o in result.order])


def precision_recall(
    cumulative_true_positives: np.ndarray, cumulative_false_positives: np.ndarray, num_gt: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative precision and recall of one class.

    Args:
        cumulative_true_positives: ``(n,)`` cumulative TP counts (descending confidence).
        cumulative_false_positives: ``(n,)`` cumulative FP counts.
        num_gt: number of (non-neutral) ground-truth boxes of the class.

    Returns:
        ``(precisions, recalls)``, both ``(n,)`` float64. Precision is 0 where no prediction has
        counted yet (only neutral matches); recall is NaN everywhere when ``num_gt == 0``.

    Example:
        >>> precision_recall(np.array([1, 1, 2]), np.array([0, 1, 1]), 4)
        (array([1.        , 0.5       , 0.66666667]), array([0.25, 0.25, 0.5 ]))
    """
    ctp = np.asarray(cumulative_true_positives, dtype=np.float64)
    cfp = np.asarray(cumulative_false_positives, dtype=np.float64)
    if ctp.shape != cfp.shape:
        raise ValueError(f"TP and FP arrays differ in shape: {ctp.shape} vs {cfp.shape}")
    if num_gt < 0:
        raise ValueError(f"num_gt must be >= 0, got {num_gt}")
    counted = ctp + cfp
    precisions = np.divide(ctp, counted, out=np.zeros_like(ctp), where=counted > 0)
    recalls = ctp / num_gt if num_gt > 0 else np.full_like(ctp, np.nan)
    return precisions, recalls


def average_precision(
    precisions: np.ndarray,
    recalls: np.ndarray,
    mode: str = "sample",
    num_recall_points: int = 11,
) -> float:
    """Average precision of one class from its cumulative precision/recall curve.

    Args:
        precisions: ``(n,)`` cumulative precisions, descending confidence order.
        recalls: ``(n,)`` cumulative recalls (non-decreasing).
        mode: ``'sample'``: VOC2007, mean over ``t in linspace(0, 1, num_recall_points)`` of the
            highest precision at recall ``>= t`` (0 if none). ``'integrate'``: VOC2010+, area
            under the non-increasing precision envelope; the curve is extended to recall 0 at the
            first precision reached, so a perfect detector scores 1.0.
        num_recall_points: number of recall thresholds in ``'sample'`` mode (11 for VOC2007).

    Returns:
        The AP in ``[0, 1]``; NaN when the recalls are NaN (a class without ground truth).

    Example:
        >>> average_precision(np.array([1.0]), np.array([1.0]), mode="integrate")
        1.0
    """
    if mode not in AP_MODES:
        raise ValueError(f"mode must be one of {list(AP_MODES)}, got {mode!r}")
    precisions = np.asarray(precisions, dtype=np.float64).reshape(-1)
    recalls = np.asarray(recalls, dtype=np.float64).reshape(-1)
    if precisions.shape != recalls.shape:
        raise ValueError(
            f"precisions and recalls differ in shape: {precisions.shape} vs {recalls.shape}"
        )
    if np.any(np.isnan(recalls)):
        return float("nan")
    if mode == "sample":
        if int(num_recall_points) < 1:
            raise ValueError(f"num_recall_points must be >= 1, got {num_recall_points!r}")
        # Highest precision at recall >= r for each prediction: a reversed running maximum.
        envelope = np.maximum.accumulate(precisions[::-1])[::-1]
        thresholds = np.linspace(0.0, 1.0, int(num_recall_points), endpoint=True)
        # Recalls are non-decreasing: the first index with recall >= t starts the suffix.
        first = np.searchsorted(recalls, thresholds, side="left")
        reached = first < recalls.shape[0]
        sampled = np.zeros_like(thresholds)
        sampled[reached] = envelope[first[reached]]
        return float(sampled.sum() / int(num_recall_points))
    # VOC2010+ (devkit VOCap.m): pad with recall 0 and 1 at precision 0, make the precision
    # non-increasing, sum the rectangles where the recall changes.
    mrec = np.concatenate(([0.0], recalls, [1.0]))
    mpre = np.concatenate(([0.0], precisions, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def mean_average_precision(
    average_precisions: Sequence[float], num_gt_per_class: Sequence[int] | None = None
) -> float:
    """Mean of the per-class APs (index 0, the background, left out).

    Classes without ground truth (``num_gt_per_class[c] == 0``, or a NaN AP) are excluded from
    the mean with a `UserWarning` naming them: their AP is undefined, and counting it as 0 would
    punish a detector for a class the dataset does not contain.

    Returns:
        The mAP, or NaN if no class has ground truth.
    """
    aps = np.asarray(average_precisions, dtype=np.float64)[1:]
    defined = ~np.isnan(aps)
    if num_gt_per_class is not None:
        defined &= np.asarray(num_gt_per_class)[1:] > 0
    if not np.all(defined):
        excluded = (np.flatnonzero(~defined) + 1).tolist()
        warnings.warn(
            f"classes {excluded} have no ground-truth boxes; their AP is undefined and they are "
            "left out of the mean average precision",
            UserWarning,
            stacklevel=2,
        )
    if not np.any(defined):
        return float("nan")
    return float(np.mean(aps[defined]))


class EvaluationResult(NamedTuple):
    """Everything `evaluate_predictions` computes; lists are indexed by class id."""

    mean_average_precision: float
    average_precisions: list
    num_gt_per_class: np.ndarray
    true_positives: list
    false_positives: list
    cumulative_true_positives: list
    cumulative_false_positives: list
    cumulative_precisions: list
    cumulative_recalls: list


def _precisions_recalls_aps(match: MatchResult, num_gt_per_class, mode, num_recall_points):
    precisions, recalls, aps = [np.zeros(0)], [np.zeros(0)], [0.0]
    for c in range(1, len(match.true_positives)):
        p, r = precision_recall(
            match.cumulative_true_positives[c],
            match.cumulative_false_positives[c],
            int(num_gt_per_class[c]),
        )
        precisions.append(p)
        recalls.append(r)
        if num_gt_per_class[c] == 0:
            aps.append(float("nan"))
        else:
            aps.append(average_precision(p, r, mode, num_recall_points))
    return precisions, recalls, aps


def evaluate_predictions(
    prediction_results: Sequence,
    labels: Sequence,
    image_ids: Sequence,
    n_classes: int,
    eval_neutral: Sequence | None = None,
    ignore_neutral_boxes: bool = True,
    matching_iou_threshold: float = 0.5,
    border_pixels: str = "include",
    sorting_algorithm: str = "quicksort",
    average_precision_mode: str = "sample",
    num_recall_points: int = 11,
    gt_format: dict = GT_FORMAT,
) -> EvaluationResult:
    """VOC mAP of fixed predictions, no model needed: count, match, precision/recall, AP, mAP.

    Arguments as in `match_predictions` and `average_precision`.

    Example (a folder of detection files)::

        labels, neutral, ids = read_voc_ground_truth(root / "Annotations", classes, image_set)
        preds = read_detection_folder(root / "detections", ids, n_classes=20)
        result = evaluate_predictions(preds, labels, ids, 20, eval_neutral=neutral)
        print(result.mean_average_precision)
    """
    if average_precision_mode not in AP_MODES:
        raise ValueError(
            f"average_precision_mode must be one of {list(AP_MODES)}, got "
            f"{average_precision_mode!r}"
        )
    n_classes = _check_n_classes(n_classes)
    if len(labels) != len(image_ids):
        raise ValueError(f"got {len(labels)} label arrays for {len(image_ids)} image ids")
    ground_truth = flatten_ground_truth(labels, eval_neutral, gt_format, image_ids)
    num_gt = _count_flat(ground_truth[1], ground_truth[3], n_classes, ignore_neutral_boxes)
    match = _match_lists(
        prediction_results,
        image_ids,
        n_classes,
        ground_truth,
        matching_iou_threshold=matching_iou_threshold,
        border_pixels=border_pixels,
        ignore_neutral_boxes=ignore_neutral_boxes,
        sorting_algorithm=sorting_algorithm,
    )
    precisions, recalls, aps = _precisions_recalls_aps(
        match, num_gt, average_precision_mode, num_recall_points
    )
    return EvaluationResult(
        mean_average_precision(aps, num_gt),
        aps,
        num_gt,
        match.true_positives,
        match.false_positives,
        match.cumulative_true_positives,
        match.cumulative_false_positives,
        precisions,
        recalls,
    )


# ---------------------------------------------------------------------------------------------
# The model-driven evaluator
# ---------------------------------------------------------------------------------------------


def _progress(iterable, verbose: bool, description: str):
    if not verbose:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, file=sys.stdout, desc=description)


class Evaluator:
    """Pascal VOC mean average precision of a Keras SSD model on a `DataGenerator` dataset.

    Each step is a public method storing its result on the instance (as in the original):
    `predict_on_dataset` -> ``prediction_results``; `get_num_gt_per_class` ->
    ``num_gt_per_class``; `match_predictions` -> ``true_positives``, ``false_positives``,
    ``cumulative_true_positives``, ``cumulative_false_positives``; `compute_precision_recall` ->
    ``cumulative_precisions``, ``cumulative_recalls``; `compute_average_precisions` ->
    ``average_precisions``; `compute_mean_average_precision` -> ``mean_average_precision``.
    All per-class lists have ``n_classes + 1`` entries, index 0 being a dummy for the background.
    The steps after prediction are the pure functions of this module, so predictions read from
    files can be evaluated by setting ``prediction_results`` and skipping `predict_on_dataset`.

    Args:
        model: a Keras SSD model (anything with ``predict(batch, verbose=0)``).
        n_classes: number of object classes (20 for Pascal VOC).
        data_generator: a `DataGenerator` holding the evaluation set: ``labels``, ``image_ids``,
            ``eval_neutral``, ``get_dataset_size()`` and ``generate(...)``.
        model_mode: ``'inference'`` / ``'inference_fast'`` (the model outputs decoded
            ``(batch, top_k, 6)`` rows, zero-padded) or ``'training'`` (raw
            ``(batch, n_anchors, n_classes + 1 + 12)``, decoded here with `decode_detections`).
        pred_format: column of ``class_id``, ``conf``, ``xmin``, ``ymin``, ``xmax``, ``ymax`` in
            a decoded prediction.
        gt_format: column of ``class_id``, ``xmin``, ``ymin``, ``xmax``, ``ymax`` in a label.

    Example:
        >>> evaluator = Evaluator(model, n_classes=20, data_generator=dataset)  # doctest: +SKIP
        >>> mean_ap, aps = evaluator(300, 300, batch_size=8,
        ...                          return_average_precisions=True)  # doctest: +SKIP
    """

    MODEL_MODES = ("training", "inference", "inference_fast")

    def __init__(
        self,
        model,
        n_classes: int,
        data_generator,
        model_mode: str = "inference",
        pred_format: dict | None = None,
        gt_format: dict | None = None,
    ):
        if model_mode not in self.MODEL_MODES:
            raise ValueError(
                f"model_mode must be one of {list(self.MODEL_MODES)}, got {model_mode!r}"
            )
        self.model = model
        self.data_generator = data_generator
        self.n_classes = _check_n_classes(n_classes)
        self.model_mode = model_mode
        self.pred_format = _check_format(
            dict(PRED_FORMAT if pred_format is None else pred_format),
            ("class_id", "conf", "xmin", "ymin", "xmax", "ymax"),
            "pred_format",
        )
        self.gt_format = _check_format(
            dict(GT_FORMAT if gt_format is None else gt_format),
            ("class_id", "xmin", "ymin", "xmax", "ymax"),
            "gt_format",
        )
        self.prediction_results = None
        self.num_gt_per_class = None
        self.true_positives = None
        self.false_positives = None
        self.cumulative_true_positives = None
        self.cumulative_false_positives = None
        self.cumulative_precisions = None
        self.cumulative_recalls = None
        self.average_precisions = None
        self.mean_average_precision = None

    def __call__(
        self,
        img_height: int,
        img_width: int,
        batch_size: int,
        data_generator_mode: str = "resize",
        round_confidences: int | bool = False,
        matching_iou_threshold: float = 0.5,
        border_pixels: str = "include",
        sorting_algorithm: str = "quicksort",
        average_precision_mode: str = "sample",
        num_recall_points: int = 11,
        ignore_neutral_boxes: bool = True,
        return_precisions: bool = False,
        return_recalls: bool = False,
        return_average_precisions: bool = False,
        verbose: bool = True,
        decoding_confidence_thresh: float = 0.01,
        decoding_iou_threshold: float = 0.45,
        decoding_top_k: int = 200,
        decoding_pred_coords: str = "centroids",
        decoding_normalize_coords: bool = True,
    ):
        """Runs every step: predict, count, match, precision/recall, AP, mAP.

        Args:
            img_height: model input height.
            img_width: model input width.
            batch_size: images per prediction batch.
            data_generator_mode: ``'resize'`` (warp to the input size) or ``'pad'`` (pad to the
                input aspect ratio, bottom/right, then resize).
            round_confidences: False or a number of decimals to round confidences to.
            matching_iou_threshold: IoU needed for a true positive (``>=``).
            border_pixels: ``'include'`` (VOC, +1 pixel), ``'half'`` or ``'exclude'``; used for
                matching and for decoding.
            sorting_algorithm: ``np.argsort`` kind used to sort by confidence.
            average_precision_mode: ``'sample'`` (VOC2007 k-point) or ``'integrate'``
                (VOC2010+ all-point).
            num_recall_points: recall thresholds in ``'sample'`` mode.
            ignore_neutral_boxes: difficult boxes neither count nor penalise.
            return_precisions: also return the cumulative precisions per class.
            return_recalls: also return the cumulative recalls per class.
            return_average_precisions: also return the AP per class.
            verbose: print progress.
            decoding_confidence_thresh: decoder setting (``model_mode='training'`` only).
            decoding_iou_threshold: decoder NMS IoU threshold (training mode only).
            decoding_top_k: decoder top-k (training mode only).
            decoding_pred_coords: the model's box format (training mode only).
            decoding_normalize_coords: whether the model outputs relative coordinates.

        Returns:
            The mAP (float), or ``[mAP, aps?, precisions?, recalls?]`` with the requested extras
            in that order.
        """
        self.predict_on_dataset(
            img_height=img_height,
            img_width=img_width,
            batch_size=batch_size,
            data_generator_mode=data_generator_mode,
            decoding_confidence_thresh=decoding_confidence_thresh,
            decoding_iou_threshold=decoding_iou_threshold,
            decoding_top_k=decoding_top_k,
            decoding_pred_coords=decoding_pred_coords,
            decoding_normalize_coords=decoding_normalize_coords,
            decoding_border_pixels=border_pixels,
            round_confidences=round_confidences,
            verbose=verbose,
            ret=False,
        )
        self.get_num_gt_per_class(ignore_neutral_boxes=ignore_neutral_boxes, verbose=False)
        self.match_predictions(
            ignore_neutral_boxes=ignore_neutral_boxes,
            matching_iou_threshold=matching_iou_threshold,
            border_pixels=border_pixels,
            sorting_algorithm=sorting_algorithm,
            verbose=verbose,
        )
        self.compute_precision_recall(verbose=verbose)
        self.compute_average_precisions(
            mode=average_precision_mode, num_recall_points=num_recall_points, verbose=verbose
        )
        mean_ap = self.compute_mean_average_precision(ret=True)
        if return_precisions or return_recalls or return_average_precisions:
            ret: list[Any] = [mean_ap]
            if return_average_precisions:
                ret.append(self.average_precisions)
            if return_precisions:
                ret.append(self.cumulative_precisions)
            if return_recalls:
                ret.append(self.cumulative_recalls)
            return ret
        return mean_ap

    def predict_on_dataset(
        self,
        img_height: int,
        img_width: int,
        batch_size: int,
        data_generator_mode: str = "resize",
        decoding_confidence_thresh: float = 0.01,
        decoding_iou_threshold: float = 0.45,
        decoding_top_k: int = 200,
        decoding_pred_coords: str = "centroids",
        decoding_normalize_coords: bool = True,
        decoding_border_pixels: str = "include",
        round_confidences: int | bool = False,
        verbose: bool = True,
        ret: bool = False,
    ):
        """Predicts on the whole dataset, batch by batch, in original-image coordinates.

        Images go through ``ConvertTo3Channels`` and ``Resize`` (``'pad'`` mode first pads them to
        the input aspect ratio); the predictions are mapped back to each original image with the
        generator's inverse transforms, and box coordinates are rounded to 0.1 px.

        Returns:
            None, or with ``ret`` the ``n_classes + 1`` per-class lists of
            ``(image_id, conf, xmin, ymin, xmax, ymax)``.
        """
        from eval_utils._inference import predict_batches

        if round_confidences is not False and (
            isinstance(round_confidences, bool) or not isinstance(round_confidences, int)
        ):
            raise ValueError(
                f"round_confidences must be False or a number of decimals, got "
                f"{round_confidences!r}"
            )
        if self.data_generator.image_ids is None:
            # As the original: datasets without ids get their positions as ids.
            self.data_generator.image_ids = list(range(self.data_generator.get_dataset_size()))
        pf = self.pred_format
        results: list[list[tuple]] = [[] for _ in range(self.n_classes + 1)]
        batches = predict_batches(
            model=self.model,
            data_generator=self.data_generator,
            img_height=img_height,
            img_width=img_width,
            batch_size=batch_size,
            data_generator_mode=data_generator_mode,
            model_mode=self.model_mode,
            confidence_thresh=decoding_confidence_thresh,
            iou_threshold=decoding_iou_threshold,
            top_k=decoding_top_k,
            pred_coords=decoding_pred_coords,
            normalize_coords=decoding_normalize_coords,
            border_pixels=decoding_border_pixels,
            labels_format=self.gt_format,
            pred_format=pf,
            returns_extra=("evaluation-neutral", "original_labels"),
            verbose=verbose,
            description="Producing predictions batch-wise",
        )
        for batch_image_ids, batch_predictions in batches:
            for image_id, boxes in zip(batch_image_ids, batch_predictions):
                for box in boxes:
                    class_id = int(box[pf["class_id"]])
                    if not 1 <= class_id <= self.n_classes:
                        raise ValueError(
                            f"the model predicted class id {class_id} for image {image_id!r}, "
                            f"outside 1..{self.n_classes}"
                        )
                    confidence = float(box[pf["conf"]])
                    if round_confidences is not False:
                        confidence = round(confidence, round_confidences)
                    coords = (round(float(box[pf[k]]), 1) for k in ("xmin", "ymin", "xmax", "ymax"))
                    results[class_id].append((image_id, confidence, *coords))
        self.prediction_results = results
        if ret:
            return results
        return None

    def write_predictions_to_txt(
        self,
        classes: Sequence[str] | None = None,
        out_file_prefix: str = "comp3_det_test_",
        verbose: bool = True,
    ) -> list[str]:
        """Writes one VOC results file per class: ``<prefix><class name>.txt``.

        Each line is ``image_id confidence xmin ymin xmax ymax`` (confidence to 4 decimals).
        Integer image ids are zero-padded to 6 digits (the original's format); string ids, such
        as VOC2012's ``2007_000027``, are written as they are (the original crashed on them).

        Args:
            classes: names indexed by class id (index 0 the background), or None for
                ``0001``, ``0002``, ...
            out_file_prefix: path prefix of the files (may include a folder).
            verbose: print progress.

        Returns:
            The paths written.
        """
        from eval_utils.voc_io import write_voc_results

        if self.prediction_results is None:
            raise ValueError(
                "There are no prediction results. Run predict_on_dataset() first (or set "
                "prediction_results)."
            )
        paths = write_voc_results(self.prediction_results, out_file_prefix, classes)
        if verbose:
            print(f"Wrote {len(paths)} results files with prefix {out_file_prefix!r}.")
        return paths

    def _ground_truth(self):
        dg = self.data_generator
        if dg.labels is None:
            raise ValueError("The data generator has no ground truth (labels is None).")
        image_ids = dg.image_ids
        if image_ids is None:
            image_ids = list(range(len(dg.labels)))
        return dg.labels, image_ids, dg.eval_neutral

    def get_num_gt_per_class(
        self, ignore_neutral_boxes: bool = True, verbose: bool = True, ret: bool = False
    ):
        """Counts the ground-truth boxes per class (neutral ones left out if asked).

        Returns:
            None, or with ``ret`` a ``(n_classes + 1,)`` int array (index 0: background).
        """
        labels, _, eval_neutral = self._ground_truth()
        if verbose:
            print("Computing the number of positive ground truth boxes per class.")
        self.num_gt_per_class = count_ground_truth(
            labels, self.n_classes, eval_neutral, ignore_neutral_boxes, self.gt_format
        )
        if ret:
            return self.num_gt_per_class
        return None

    def match_predictions(
        self,
        ignore_neutral_boxes: bool = True,
        matching_iou_threshold: float = 0.5,
        border_pixels: str = "include",
        sorting_algorithm: str = "quicksort",
        verbose: bool = True,
        ret: bool = False,
    ):
        """Matches every prediction of every class to the ground truth (VOCevaldet rule).

        ``verbose`` only prints; all predictions are matched either way (the original matched
        only the first one of each class with ``verbose=False``).

        Returns:
            None, or with ``ret`` the four per-class lists ``true_positives, false_positives,
            cumulative_true_positives, cumulative_false_positives``, each array in descending
            confidence order.
        """
        if self.prediction_results is None:
            raise ValueError(
                "There are no prediction results. Run predict_on_dataset() first (or set "
                "prediction_results)."
            )
        labels, image_ids, eval_neutral = self._ground_truth()
        if verbose:
            counts = [len(p) for p in self.prediction_results[1:]]
            print(f"Matching {sum(counts)} predictions of {self.n_classes} classes.")
            for c in np.flatnonzero(np.asarray(counts) == 0) + 1:
                print(f"No predictions for class {c}/{self.n_classes}")
        match = match_predictions(
            self.prediction_results,
            labels,
            image_ids,
            self.n_classes,
            eval_neutral,
            ignore_neutral_boxes=ignore_neutral_boxes,
            matching_iou_threshold=matching_iou_threshold,
            border_pixels=border_pixels,
            sorting_algorithm=sorting_algorithm,
            gt_format=self.gt_format,
        )
        self.true_positives = match.true_positives
        self.false_positives = match.false_positives
        self.cumulative_true_positives = match.cumulative_true_positives
        self.cumulative_false_positives = match.cumulative_false_positives
        if ret:
            return (
                self.true_positives,
                self.false_positives,
                self.cumulative_true_positives,
                self.cumulative_false_positives,
            )
        return None

    def compute_precision_recall(self, verbose: bool = True, ret: bool = False):
        """Cumulative precision and recall per class (see `precision_recall`).

        Returns:
            None, or with ``ret`` ``(cumulative_precisions, cumulative_recalls)``.
        """
        if self.cumulative_true_positives is None or self.cumulative_false_positives is None:
            raise ValueError("True/false positives not available. Run match_predictions() first.")
        if self.num_gt_per_class is None:
            raise ValueError("Ground-truth counts not available. Run get_num_gt_per_class() first.")
        precisions, recalls = [np.zeros(0)], [np.zeros(0)]
        for c in _progress(range(1, self.n_classes + 1), verbose, "Precision and recall"):
            p, r = precision_recall(
                self.cumulative_true_positives[c],
                self.cumulative_false_positives[c],
                int(self.num_gt_per_class[c]),
            )
            precisions.append(p)
            recalls.append(r)
        self.cumulative_precisions = precisions
        self.cumulative_recalls = recalls
        if ret:
            return precisions, recalls
        return None

    def compute_average_precisions(
        self,
        mode: str = "sample",
        num_recall_points: int = 11,
        verbose: bool = True,
        ret: bool = False,
    ):
        """AP per class, ``'sample'`` (VOC2007 k-point) or ``'integrate'`` (VOC2010+ all-point).

        A class without ground truth gets NaN (undefined), and a warning from
        `compute_mean_average_precision`.

        Returns:
            None, or with ``ret`` the list of APs (index 0: background, 0.0).
        """
        if self.cumulative_precisions is None or self.cumulative_recalls is None:
            raise ValueError(
                "Precisions and recalls not available. Run compute_precision_recall() first."
            )
        if mode not in AP_MODES:
            raise ValueError(f"mode must be one of {list(AP_MODES)}, got {mode!r}")
        aps = [0.0]
        for c in _progress(range(1, self.n_classes + 1), verbose, "Average precisions"):
            if self.num_gt_per_class is not None and self.num_gt_per_class[c] == 0:
                aps.append(float("nan"))
                continue
            aps.append(
                average_precision(
                    self.cumulative_precisions[c],
                    self.cumulative_recalls[c],
                    mode=mode,
                    num_recall_points=num_recall_points,
                )
            )
        self.average_precisions = aps
        if ret:
            return aps
        return None

    def compute_mean_average_precision(self, ret: bool = True):
        """Mean AP over the classes that have ground truth (warns about the others).

        Returns:
            The mAP (float) with ``ret``, else None.
        """
        if self.average_precisions is None:
            raise ValueError(
                "Average precisions not available. Run compute_average_precisions() first."
            )
        self.mean_average_precision = mean_average_precision(
            self.average_precisions, self.num_gt_per_class
        )
        if ret:
            return self.mean_average_precision
        return None
