"""Pascal VOC average precision as pure numpy functions (the model-driven `Evaluator` that
calls them is in `eval_utils.average_precision_evaluator`).

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
the background), the 11-point ``linspace`` thresholds.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from bounding_box_utils.bounding_box_utils import border_offset, iou
from eval_utils.detection_arrays import (
    GT_FORMAT,
    _check_n_classes,
    flatten_ground_truth,
    flatten_prediction_results,
)

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


def _checked_match_arrays(
    det_image_index,
    det_class_id,
    det_confidence,
    det_boxes,
    gt_image_index,
    gt_class_id,
    gt_boxes,
    gt_neutral,
    n_classes: int,
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The inputs of `match_detection_arrays` as flat arrays, checked.

    Returns:
        ``((det_image_index, det_class_id, det_confidence, det_boxes), (gt_image_index,
        gt_class_id, gt_boxes, gt_neutral))``: int64 image indices and class ids, float64
        confidences and ``(., 4)`` boxes, bool ``gt_neutral`` (all False when None).

    Raises:
        ValueError: for arrays of different lengths, a NaN confidence, or a detection class id
            outside ``1..n_classes``, naming the array and the position.
    """
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
    return (
        (det_image_index, det_class_id, det_confidence, det_boxes),
        (gt_image_index, gt_class_id, gt_boxes, gt_neutral),
    )


def _true_and_false_positives(
    best_iou: np.ndarray,
    best_gt: np.ndarray,
    gt_neutral: np.ndarray,
    matching_iou_threshold: float,
    ignore_neutral_boxes: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """VOCevaldet's verdict on one class's detections, in descending confidence order.

    Args:
        best_iou: ``(n,)`` each detection's highest IoU with a box of its class and image.
        best_gt: ``(n,)`` that box's position among the class's boxes (-1 where none).
        gt_neutral: ``(g_c,)`` bool, the class's neutral ("difficult") boxes.
        matching_iou_threshold: a detection matches its box at IoU ``>=`` this.
        ignore_neutral_boxes: if True, a detection taking a neutral box is neither TP nor FP.

    Returns:
        ``(tp, fp)``, two ``(n,)`` int64 arrays of 0/1: the first detection to take a box is
        the true positive, later ones are false positives (duplicates).
    """
    # As VOCevaldet, a detection overlapping nothing is never a match, even at threshold 0.
    matched = (best_iou >= matching_iou_threshold) & (best_iou > 0)
    neutral_hit = np.zeros(best_iou.shape[0], dtype=bool)
    if ignore_neutral_boxes:
        neutral_hit[matched] = gt_neutral[best_gt[matched]]
    candidates = np.flatnonzero(matched & ~neutral_hit)
    tp = np.zeros(best_iou.shape[0], dtype=np.int64)
    _, first = np.unique(best_gt[candidates], return_index=True)
    tp[candidates[first]] = 1
    fp = ((tp == 0) & ~neutral_hit).astype(np.int64)
    return tp, fp


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
    detections, ground_truth = _checked_match_arrays(
        det_image_index,
        det_class_id,
        det_confidence,
        det_boxes,
        gt_image_index,
        gt_class_id,
        gt_boxes,
        gt_neutral,
        n_classes,
    )
    det_image_index, det_class_id, det_confidence, det_boxes = detections
    gt_image_index, gt_class_id, gt_boxes, gt_neutral = ground_truth

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
        tp, fp = _true_and_false_positives(
            best_iou, best_gt, gt_neutral[gts], matching_iou_threshold, ignore_neutral_boxes
        )
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
    ground_truth = _flat_ground_truth(labels, image_ids, eval_neutral, gt_format)
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


def _flat_ground_truth(labels, image_ids, eval_neutral, gt_format) -> tuple[np.ndarray, ...]:
    """`flatten_ground_truth` of per-image labels that must come with one id per image."""
    if len(labels) != len(image_ids):
        raise ValueError(f"got {len(labels)} label arrays for {len(image_ids)} image ids")
    return flatten_ground_truth(labels, eval_neutral, gt_format, image_ids)


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
    ground_truth = _flat_ground_truth(labels, image_ids, eval_neutral, gt_format)
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
