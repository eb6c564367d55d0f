"""Does another runtime's decoding equal the Keras decode layer's, up to legitimate near-ties?

An exported `DecodeDetections(Fast)` graph (ONNX Runtime, LiteRT, ...) computes the same class
scores and boxes as Keras only to float32 rounding: two candidates whose confidences differ by an
ulp or two may come out in the other order. Greedy NMS and the `top_k` cut turn such an order flip
into a different *set* of rows: the other box of a tied, overlapping pair is kept (and with it,
possibly, boxes the first one would have suppressed), the other of two tied classes wins an
anchor's argmax, or the other of two tied rows fills the last place. None of that is a converter
bug, so `decoding_problem` compares the detections as sets and accepts exactly those
differences, while still catching what a converter gets wrong: a row that is not a candidate of
the raw predictions at all (wrong class id, box or score, NaN), a selection that is not explained
by a near-tie (e.g. sort keys turned into NaN), or an unsorted output.

All arrays are numpy; rows are `(class_id, confidence, xmin, ymin, xmax, ymax)` as the decode
layers return them, all-zero rows after the last detection.
"""

from __future__ import annotations

import numpy as np

from bounding_box_utils.bounding_box_utils import iou

# Confidences closer than this count as tied (float32 runtimes differ by ~1e-7 on scores in
# [0, 1]; two genuinely different candidates are rarely this close).
TIE_TOLERANCE = 1e-5


def decoding_problem(
    expected: np.ndarray,
    got: np.ndarray,
    class_scores: np.ndarray,
    boxes: np.ndarray,
    *,
    iou_threshold: float,
    per_class: bool = True,
    rtol: float = 1e-3,
    atol: float = 1e-3,
    tie_tolerance: float = TIE_TOLERANCE,
) -> str | None:
    """`None` when `got` is the decoding `expected` is, up to near-ties; else what differs.

    Args:
        expected: `(batch, top_k, 6)` the reference (Keras) decode layer's output.
        got: `(batch, top_k, 6)` the output to check (e.g. ONNX Runtime's).
        class_scores: `(batch, n_anchors, n_classes + 1)` the raw softmax scores both decoded.
        boxes: `(batch, n_anchors, 4)` the decoded anchor boxes (corners, the output's units).
        iou_threshold: the decode layer's NMS overlap limit.
        per_class: `True` for `DecodeDetections` (every class of an anchor is a candidate),
            `False` for `DecodeDetectionsFast` (only the anchor's best class).
        rtol, atol: how close the scores and box coordinates of one detection must be.
        tie_tolerance: confidences closer than this are tied (their order may flip).

    Returns:
        A one-line description of the first difference found, or `None`.
    """
    if got.shape != expected.shape:
        return f"output shape {got.shape} instead of {expected.shape}"
    if not np.isfinite(got).all():
        return "non-finite values in the output"
    for image, (want, have) in enumerate(zip(expected, got)):
        problem = _image_problem(
            want[want[:, 1] > 0],
            have[have[:, 1] > 0],
            class_scores[image],
            boxes[image],
            top_k=len(want),
            iou_threshold=iou_threshold,
            per_class=per_class,
            close=lambda a, b: np.abs(a - b) <= atol + rtol * np.abs(b),
            tie=tie_tolerance,
        )
        if problem is not None:
            return f"image {image}: {problem}"
    return None


def _image_problem(want, have, class_scores, boxes, *, top_k, iou_threshold, per_class, close, tie):
    if (np.diff(have[:, 1]) > tie).any():
        return "detections not sorted by decreasing confidence"
    best = class_scores.max(axis=-1)  # (n_anchors,)
    for row in have:
        if not _is_candidate(row, class_scores, best, boxes, per_class, close, tie):
            return (
                f"detection (class {row[0]:g}, confidence {row[1]:.6g}, box "
                f"{np.round(row[2:], 2).tolist()}) is not a candidate of the raw predictions"
            )
    unmatched_want, unmatched_have = _unmatched(want, have, close)
    unexplained = _unexplained(
        want[unmatched_want],
        have[unmatched_have],
        top_k,
        (want, have),
        iou_threshold,
        argmax_ties=not per_class,
        tie=tie,
    )
    if unexplained is not None:
        return (
            f"detection (class {unexplained[0]:g}, confidence {unexplained[1]:.6g}) is in one "
            "output only, and no near-tie explains it"
        )
    return None


def _is_candidate(row, class_scores, best, boxes, per_class, close, tie) -> bool:
    """An anchor decodes to `row`'s box and scores `row`'s confidence for `row`'s class (which,
    for an argmax decoder, is also (nearly) the anchor's best score)."""
    class_id = int(row[0])
    if not 0 < class_id < class_scores.shape[-1] or row[0] != class_id:
        return False
    score = class_scores[:, class_id]  # (n_anchors,)
    same = close(row[2:], boxes).all(axis=-1) & close(row[1], score)
    if not per_class:
        same &= score >= best - tie
    return bool(same.any())


def _unmatched(want, have, close) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the rows of each side without a twin (same class, close score and box)."""
    free = np.ones(len(have), bool)
    lonely = np.ones(len(want), bool)
    for i, row in enumerate(want):
        twins = free & (have[:, 0] == row[0]) & close(have[:, 1:], row[1:]).all(axis=1)
        if twins.any():
            free[np.argmax(twins)] = False
            lonely[i] = False
    return lonely, free


def _unexplained(lonely_want, lonely_have, top_k, both, iou_threshold, *, argmax_ties, tie):
    """The first one-sided row that no near-tie explains, or `None`.

    A one-sided row is explained by (a) a row of the other side's one-sided rows of the same class,
    near-equal confidence and IoU above the threshold (greedy NMS kept the other of a tied pair),
    (b) with `argmax_ties`, such a row with the same box and another class (an argmax tie between
    two classes of one anchor),
    (c) both outputs being full and its confidence not above the higher of their last ones (a row
    pushed out of, or let into, the `top_k` rows by a flip above it), or (d) a one-sided row of the
    other side of its class, itself explained, overlapping it above the threshold (that row's
    presence or absence changed what NMS suppressed).
    """
    sides = [lonely_want, lonely_have]
    explained = [np.zeros(len(s), bool) for s in sides]
    full = all(len(rows) == top_k for rows in both)
    cut = max(rows[-1, 1] for rows in both) + tie if full else -np.inf
    for side, other in ((0, 1), (1, 0)):
        for i, row in enumerate(sides[side]):
            rows = sides[other]
            tied = np.abs(rows[:, 1] - row[1]) <= tie
            iou = _iou(row[2:], rows[:, 2:])
            same_class = rows[:, 0] == row[0]
            nms_flip = tied & same_class & (iou > iou_threshold)
            argmax_flip = tied & ~same_class & (iou > 0.99) & argmax_ties
            explained[side][i] = nms_flip.any() or argmax_flip.any() or row[1] <= cut
    changed = True
    while changed:  # (d): follow the consequences of each explained row through NMS
        changed = False
        for side, other in ((0, 1), (1, 0)):
            for i, row in enumerate(sides[side]):
                if explained[side][i]:
                    continue
                rows = sides[other]
                overlaps = (rows[:, 0] == row[0]) & (_iou(row[2:], rows[:, 2:]) > iou_threshold)
                if (overlaps & explained[other]).any():
                    explained[side][i] = changed = True
    for side in (0, 1):
        if not explained[side].all():
            return sides[side][np.argmin(explained[side])]
    return None


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU `(n,)` of one corners box with each of `boxes` `(n, 4)`, as the decode layers do."""
    if len(boxes) == 0:
        return np.zeros(0)
    return iou(box, boxes, coords="corners", mode="outer_product", border_pixels="half")[0]
