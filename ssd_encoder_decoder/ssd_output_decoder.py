"""Decodes SSD model output into detections, with greedy non-maximum suppression (numpy).

- `decode_detections`: per class, confidence ``> confidence_thresh``, greedy NMS, then the
  ``top_k`` most confident detections over all classes (the original ssd_keras algorithm).
- `decode_detections_fast`: one class per anchor (argmax over all classes, background included),
  confidence ``>= confidence_thresh``, one class-agnostic greedy NMS.
- `greedy_nms`: class-agnostic greedy NMS of already decoded detections.
- `decode_detections_debug`: `decode_detections` plus, per detection, the index of the anchor
  it came from; `get_num_boxes_per_pred_layer` and `get_pred_layers` map that index to the
  predictor layer.
- `apply_inverse_transforms`: maps detections back to the original images (the hook the
  evaluator and inference use; both decoders also take ``inverse_transforms=``).

Detections are rows ``[class_id, confidence, xmin, ymin, xmax, ymax]`` (absolute pixels when
``normalize_coords``), one ``(k, 6)`` array per image, **sorted by descending confidence** (the
original returned the ``top_k`` rows in arbitrary order; ties keep class order, then anchor order).

Greedy NMS here gives exactly the original's result: boxes are visited by descending confidence
(ties: lowest index first), a box is dropped when its IoU with an already kept box is ``>
iou_threshold`` (so an IoU equal to the threshold is kept), and the IoUs come from
`bounding_box_utils.iou` in the input's float type, as in the original. It is not a python loop
over boxes, though: the pairs of boxes that could overlap by more than the threshold are found with
a sort-and-search over size buckets (IoU > t needs both side ratios > t and centres closer than
``(w1 + w2) / 2 - t * max(w1, w2)``), their IoUs are computed in one vectorised call, and the greedy
selection on that sparse graph is resolved in rounds (a box is kept once every higher-ranked
neighbour is decided and none is kept). The geometry is shared by all classes of an image, since
the classes of one anchor share its box. When only the ``top_k`` best detections are wanted, NMS is
first solved on the most confident candidates only (exact, see `_greedy_nms_top_k`): with an
untrained model, where nearly every anchor is a candidate of every class, that is what keeps
decoding fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from bounding_box_utils.bounding_box_utils import border_offset, check_coords, iou, to_corners
from ssd_encoder_decoder import box_coding
from ssd_encoder_decoder.anchor_boxes import n_boxes_per_location

__all__ = [
    "apply_inverse_transforms",
    "decode_detections",
    "decode_detections_debug",
    "decode_detections_fast",
    "decode_boxes",
    "get_num_boxes_per_pred_layer",
    "get_pred_layers",
    "greedy_nms",
]


# --------------------------------------------------------------------------------------------
# Box decoding
# --------------------------------------------------------------------------------------------


def decode_boxes(
    y_pred: np.ndarray,
    input_coords: str = "centroids",
    normalize_coords: bool = True,
    img_height: float | None = None,
    img_width: float | None = None,
) -> np.ndarray:
    """Turns the predicted offsets into corners (`box_coding.decode_boxes`, in the input's dtype).

    Args:
        y_pred: ``(batch, n_anchors, n_classes + 1 + 12)`` model output: ``[class scores |
            4 offsets | 4 anchor coordinates | 4 variances]``.
        input_coords: the anchor/offset format: ``'centroids'``, ``'minmax'`` or ``'corners'``.
        normalize_coords: the anchors are relative; multiply by ``img_width``/``img_height``.
        img_height, img_width: needed with ``normalize_coords``.

    Returns:
        ``(batch, n_anchors, 4)`` boxes ``[xmin, ymin, xmax, ymax]``.
    """
    y_pred = _check_y_pred(y_pred)
    check_coords(input_coords, "input_coords")
    if normalize_coords and (img_height is None or img_width is None):
        raise ValueError(
            "normalize_coords=True needs img_height and img_width, got "
            f"img_height={img_height!r}, img_width={img_width!r}"
        )
    boxes = box_coding.decode_boxes(
        y_pred[:, :, -12:-8], y_pred[:, :, -8:-4], y_pred[:, :, -4:], input_coords
    )
    boxes = to_corners(boxes, input_coords)
    if normalize_coords:
        boxes[:, :, [0, 2]] *= img_width
        boxes[:, :, [1, 3]] *= img_height
    return boxes


def _check_y_pred(y_pred) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    if not np.issubdtype(y_pred.dtype, np.floating):
        y_pred = y_pred.astype(np.float64)
    if y_pred.ndim != 3 or y_pred.shape[-1] < 14:
        raise ValueError(
            "y_pred must have shape (batch, n_anchors, n_classes + 1 + 12) with at least one "
            f"object class, got {y_pred.shape}"
        )
    return y_pred


# --------------------------------------------------------------------------------------------
# Decoders
# --------------------------------------------------------------------------------------------


def decode_detections(
    y_pred,
    confidence_thresh: float = 0.01,
    iou_threshold: float = 0.45,
    top_k: int | str = 200,
    input_coords: str = "centroids",
    normalize_coords: bool = True,
    img_height: float | None = None,
    img_width: float | None = None,
    border_pixels: str = "half",
    inverse_transforms: Sequence[Sequence[Callable | None]] | None = None,
) -> list[np.ndarray]:
    """Decodes raw SSD output into detections, with per-class greedy NMS.

    For every object class (1..n_classes): keep the anchors with confidence ``>
    confidence_thresh``, run greedy NMS on their boxes (drop a box whose IoU with a kept box is
    ``> iou_threshold``); then keep the ``top_k`` most confident detections over all classes.

    Args:
        y_pred: ``(batch, n_anchors, n_classes + 1 + 12)`` model output (softmax scores,
            offsets, anchors, variances), as from the training-mode model.
        confidence_thresh: per-class confidence a detection must exceed.
        iou_threshold: NMS drops boxes whose IoU with a kept box of the same class exceeds it.
        top_k: the number of detections kept per image, or ``'all'``.
        input_coords: the model's box format: ``'centroids'``, ``'minmax'`` or ``'corners'``.
        normalize_coords: the model predicts relative coordinates; multiply by the image size.
        img_height, img_width: the model input size (needed with ``normalize_coords``).
        border_pixels: ``'half'``, ``'include'`` or ``'exclude'``, for the NMS IoU.
        inverse_transforms: optional, per image, a list of callables (e.g. from the data
            generator's ``returns={'inverse_transform'}``) applied in order to its detections,
            mapping them back to the original image.

    Returns:
        A list with one float64 ``(k, 6)`` array per image, rows ``[class_id, confidence, xmin,
        ymin, xmax, ymax]`` sorted by descending confidence, ``k <= top_k``. An image without
        detections gives shape ``(0, 6)`` (the original gave ``(0,)``).

    Example:
        >>> detections = decode_detections(y_pred, img_height=300, img_width=300)
        >>> detections[0][:, 1]  # confidences of image 0, descending
    """
    decoded = _decode_per_class(
        y_pred, confidence_thresh, iou_threshold, top_k, input_coords, normalize_coords,
        img_height, img_width, border_pixels,
    )  # fmt: skip
    results = [rows for rows, _ in decoded]
    if inverse_transforms is not None:
        results = apply_inverse_transforms(results, inverse_transforms)
    return results


def _decode_per_class(
    y_pred,
    confidence_thresh: float,
    iou_threshold: float,
    top_k,
    input_coords: str,
    normalize_coords: bool,
    img_height,
    img_width,
    border_pixels: str,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`decode_detections` without the inverse transforms, with the detections' anchors.

    Returns:
        Per image, ``(rows, anchors)``: the ``(k, 6)`` float64 detections, sorted, and the
        ``(k,)`` int64 index of the anchor each one was decoded from.
    """
    y_pred = _check_y_pred(y_pred)
    _check_top_k(top_k)
    border_offset(border_pixels)
    decode_boxes(y_pred[:, :0], input_coords, normalize_coords, img_height, img_width)  # checks
    scores = y_pred[:, :, 1:-12]  # (B, N, n_classes): classes 1..n_classes
    results = []
    for b in range(len(y_pred)):
        candidates = scores[b] > confidence_thresh  # (N, n_classes)
        active = np.nonzero(candidates.any(axis=1))[0]  # anchors with any candidate
        compact, class_idx = np.nonzero(candidates[active])  # (anchor, class) nodes
        anchor_idx = active[compact]
        conf = scores[b][anchor_idx, class_idx]
        # Boxes of the active anchors only (the same element-wise operations).
        boxes = decode_boxes(
            y_pred[b : b + 1, active], input_coords, normalize_coords, img_height, img_width
        )[0]

        def solve(subset, boxes=boxes, compact=compact, class_idx=class_idx, conf=conf):
            anchors, classes = compact[subset], class_idx[subset]
            # The visiting order: by class, then descending confidence, then anchor.
            order = np.lexsort((anchors, -conf[subset], classes))
            keep = np.empty(len(order), dtype=bool)
            keep[order] = _grouped_greedy_nms(
                boxes, anchors[order], classes[order], iou_threshold, border_pixels
            )
            return keep

        kept = np.nonzero(_greedy_nms_top_k(solve, conf, top_k))[0]
        # Descending confidence; ties by class, then anchor.
        kept = kept[np.lexsort((anchor_idx[kept], class_idx[kept], -conf[kept]))]
        if top_k != "all":
            kept = kept[: int(top_k)]
        rows = np.empty((len(kept), 6), dtype=np.float64)
        rows[:, 0] = class_idx[kept] + 1
        rows[:, 1] = conf[kept]
        rows[:, 2:] = boxes[compact[kept]]
        results.append((rows, anchor_idx[kept]))
    return results


def decode_detections_fast(
    y_pred,
    confidence_thresh: float = 0.5,
    iou_threshold: float = 0.45,
    top_k: int | str = "all",
    input_coords: str = "centroids",
    normalize_coords: bool = True,
    img_height: float | None = None,
    img_width: float | None = None,
    border_pixels: str = "half",
    inverse_transforms: Sequence[Sequence[Callable | None]] | None = None,
) -> list[np.ndarray]:
    """Decodes raw SSD output with one class per anchor and one class-agnostic NMS.

    Each anchor's class is the argmax over all scores, background included; background anchors
    are dropped, the rest need confidence ``>= confidence_thresh`` (note: ``>=``, unlike
    `decode_detections`, as in the original), then one greedy NMS over all classes together
    (skipped when ``iou_threshold`` is 0 or None), then ``top_k``.

    Args:
        y_pred, input_coords, normalize_coords, img_height, img_width, border_pixels,
            inverse_transforms: as in `decode_detections`.
        confidence_thresh: the minimum winning score.
        iou_threshold: NMS drops boxes whose IoU with a kept box (of any class) exceeds it.
        top_k: the number of detections kept per image, or ``'all'``.

    Returns:
        A list with one ``(k, 6)`` array per image (the input's float dtype), rows ``[class_id,
        confidence, xmin, ymin, xmax, ymax]`` sorted by descending confidence.
    """
    y_pred = _check_y_pred(y_pred)
    _check_top_k(top_k)
    border_offset(border_pixels)
    decode_boxes(y_pred[:, :0], input_coords, normalize_coords, img_height, img_width)  # checks
    class_scores = y_pred[:, :, :-12]
    class_ids = np.argmax(class_scores, axis=-1)
    confidences = np.max(class_scores, axis=-1)
    results = []
    for b in range(len(y_pred)):
        selected = np.nonzero((class_ids[b] != 0) & (confidences[b] >= confidence_thresh))[0]
        rows = np.empty((len(selected), 6), dtype=y_pred.dtype)
        rows[:, 0] = class_ids[b][selected]
        rows[:, 1] = confidences[b][selected]
        rows[:, 2:] = decode_boxes(
            y_pred[b : b + 1, selected], input_coords, normalize_coords, img_height, img_width
        )[0]
        if iou_threshold:
            rows = _greedy_nms_rows(rows, iou_threshold, border_pixels, top_k=top_k)
        else:
            rows = rows[np.argsort(-rows[:, 1], kind="stable")]
        results.append(_top_k(rows, top_k))
    if inverse_transforms is not None:
        results = apply_inverse_transforms(results, inverse_transforms)
    return results


def decode_detections_debug(
    y_pred,
    confidence_thresh: float = 0.01,
    iou_threshold: float = 0.45,
    top_k: int | str = 200,
    input_coords: str = "centroids",
    normalize_coords: bool = True,
    img_height: float | None = None,
    img_width: float | None = None,
    variance_encoded_in_target: bool = False,
    border_pixels: str = "half",
) -> list[np.ndarray]:
    """`decode_detections`, with the index of the anchor box each detection came from.

    For debugging a model: the anchor index (``box_id``, the position on the ``n_anchors``
    axis of ``y_pred``) tells which predictor layer, cell and anchor shape made a detection
    (see `get_pred_layers`). The detections and their order are exactly `decode_detections`'.

    Args:
        y_pred: ``(batch, n_anchors, n_classes + 1 + 12)`` model output.
        confidence_thresh, iou_threshold, top_k, input_coords, normalize_coords, img_height,
            img_width, border_pixels: as in `decode_detections`.
        variance_encoded_in_target: the offsets in ``y_pred`` are already multiplied by the
            variances (a model trained on such targets): decode them with variances 1.

    Returns:
        A list with one float64 ``(k, 7)`` array per image, rows ``[box_id, class_id,
        confidence, xmin, ymin, xmax, ymax]`` sorted by descending confidence (ties: class,
        then ``box_id``), ``k <= top_k``. An image without detections gives ``(0, 7)`` (the
        original crashed there).

    Example:
        >>> rows = decode_detections_debug(y_pred, img_height=300, img_width=300)[0]
        >>> layers = get_pred_layers([rows], get_num_boxes_per_pred_layer(
        ...     predictor_sizes, aspect_ratios, two_boxes_for_ar1=True))[0]
    """
    y_pred = _check_y_pred(y_pred)
    if variance_encoded_in_target:
        y_pred = y_pred.copy()
        y_pred[:, :, -4:] = 1.0  # x * 1.0 == x: the same values as without variances
    decoded = _decode_per_class(
        y_pred, confidence_thresh, iou_threshold, top_k, input_coords, normalize_coords,
        img_height, img_width, border_pixels,
    )  # fmt: skip
    results = []
    for rows, anchors in decoded:
        out = np.empty((len(rows), 7), dtype=np.float64)
        out[:, 0] = anchors
        out[:, 1:] = rows
        results.append(out)
    return results


def get_num_boxes_per_pred_layer(
    predictor_sizes, aspect_ratios, two_boxes_for_ar1: bool = True
) -> list[int]:
    """The number of anchors of each predictor layer (``fh * fw * boxes per cell``).

    Args:
        predictor_sizes: ``(fh, fw)`` of each predictor layer.
        aspect_ratios: one list of aspect ratios per layer (or one list for all layers).
        two_boxes_for_ar1: as for the anchors: ratio 1 gets a second box.

    Returns:
        One int per layer; their sum is ``n_anchors`` and the layers' anchors follow each
        other in this order on the anchor axis.

    Boxes per cell come from `anchor_boxes.n_boxes_per_location`, the anchor generator's own
    count (the original added one box for ``two_boxes_for_ar1`` even without ratio 1).
    """
    sizes = np.asarray(predictor_sizes, dtype=np.int64).reshape(-1, 2)
    if len(aspect_ratios) and np.ndim(aspect_ratios[0]) == 0:
        aspect_ratios = [aspect_ratios] * len(sizes)
    if len(aspect_ratios) != len(sizes):
        raise ValueError(
            f"aspect_ratios has {len(aspect_ratios)} lists for {len(sizes)} predictor layers"
        )
    return [
        int(fh * fw * n_boxes_per_location(ratios, two_boxes_for_ar1))
        for (fh, fw), ratios in zip(sizes.tolist(), aspect_ratios)
    ]


def get_pred_layers(y_pred_decoded, num_boxes_per_pred_layer) -> list[np.ndarray]:
    """The predictor layer of each detection of `decode_detections_debug`.

    Args:
        y_pred_decoded: per image, ``(k, 7)`` rows from `decode_detections_debug` (column 0 is
            the anchor index).
        num_boxes_per_pred_layer: anchors per layer, e.g. from `get_num_boxes_per_pred_layer`.

    Returns:
        Per image, a ``(k,)`` int64 array of layer indices (0 = the first predictor layer).

    Raises:
        ValueError: an anchor index outside ``[0, sum(num_boxes_per_pred_layer))`` (names the
            image, the row and the value).
    """
    ends = np.cumsum(np.asarray(num_boxes_per_pred_layer, dtype=np.int64))
    n_anchors = int(ends[-1]) if len(ends) else 0
    results = []
    for i, rows in enumerate(y_pred_decoded):
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
        box_ids = rows[:, 0]
        bad = (box_ids < 0) | (box_ids >= n_anchors) | (box_ids != np.floor(box_ids))
        if bad.any():
            j = int(np.argmax(bad))
            raise ValueError(
                f"y_pred_decoded[{i}] row {j} has box_id {box_ids[j]:g}, not an anchor index "
                f"in [0, {n_anchors}) (the sum of num_boxes_per_pred_layer)"
            )
        results.append(np.searchsorted(ends, box_ids, side="right").astype(np.int64))
    return results


def greedy_nms(
    y_pred_decoded,
    iou_threshold: float = 0.45,
    coords: str = "corners",
    border_pixels: str = "half",
) -> list[np.ndarray]:
    """Class-agnostic greedy NMS of decoded detections, per image.

    Repeatedly keeps the most confident remaining row (ties: the earliest) and drops every
    remaining row whose IoU with it is ``> iou_threshold``.

    Args:
        y_pred_decoded: per image, a ``(k, 6)`` array of rows ``[class_id, confidence, box]``
            with the box in ``coords`` format.
        iou_threshold: suppression threshold (an IoU equal to it is kept).
        coords: the box format: ``'corners'``, ``'centroids'`` or ``'minmax'``.
        border_pixels: ``'half'``, ``'include'`` or ``'exclude'``.

    Returns:
        Per image, the kept rows in the order kept (descending confidence), dtype of the input.
        An empty image gives ``(0, 6)`` (the original gave ``(0,)``).
    """
    check_coords(coords)
    border_offset(border_pixels)
    results = []
    for i, rows in enumerate(y_pred_decoded):
        rows = np.asarray(rows)
        if not np.issubdtype(rows.dtype, np.floating):
            rows = rows.astype(np.float64)
        if rows.size == 0:
            results.append(np.zeros((0, 6), dtype=rows.dtype))
            continue
        if rows.ndim != 2 or rows.shape[1] != 6:
            raise ValueError(
                f"y_pred_decoded[{i}] must have shape (k, 6) = [class_id, confidence, box], "
                f"got {rows.shape}"
            )
        results.append(_greedy_nms_rows(rows, iou_threshold, border_pixels, coords))
    return results


def apply_inverse_transforms(y_pred_decoded, inverse_transforms) -> list[np.ndarray]:
    """Maps decoded detections back to the original images.

    Args:
        y_pred_decoded: per image, a ``(k, 6)`` array ``[class_id, confidence, xmin, ymin, xmax,
            ymax]`` (a ``(batch, k, 6)`` array also works).
        inverse_transforms: per image, a sequence of callables ``rows -> rows`` (None entries
            are skipped), applied in order, e.g. the inverters the data generator returns.

    Returns:
        A new list of arrays; the input is not modified. Images without detections are passed
        through unchanged.
    """
    if len(inverse_transforms) != len(y_pred_decoded):
        raise ValueError(
            f"inverse_transforms has {len(inverse_transforms)} entries for "
            f"{len(y_pred_decoded)} images"
        )
    results = []
    for rows, inverters in zip(y_pred_decoded, inverse_transforms):
        rows = np.array(rows, copy=True)
        if rows.size > 0:
            for inverter in inverters or ():
                if inverter is not None:
                    rows = inverter(rows)
        results.append(rows)
    return results


def _check_top_k(top_k) -> None:
    if isinstance(top_k, str):
        if top_k != "all":
            raise ValueError(f"top_k must be a positive integer or 'all', got {top_k!r}")
    elif int(top_k) != top_k or top_k < 0:
        raise ValueError(f"top_k must be a positive integer or 'all', got {top_k!r}")


def _top_k(rows: np.ndarray, top_k) -> np.ndarray:
    """Rows sorted by descending confidence (stable), at most ``top_k`` of them."""
    rows = rows[np.argsort(-rows[:, 1], kind="stable")]
    if top_k != "all" and len(rows) > top_k:
        rows = rows[: int(top_k)]
    return rows


# --------------------------------------------------------------------------------------------
# Greedy NMS machinery
# --------------------------------------------------------------------------------------------


def _greedy_nms_rows(
    rows: np.ndarray,
    iou_threshold: float,
    border_pixels: str,
    coords: str = "corners",
    top_k="all",
) -> np.ndarray:
    """Class-agnostic greedy NMS of ``(k, 6)`` rows; the kept rows by descending confidence.

    With an integer ``top_k`` the result holds (at least) the ``top_k`` most confident survivors
    exactly; less confident survivors may be left out.
    """
    if len(rows) == 0:
        return rows.reshape(0, 6)
    order = np.argsort(-rows[:, 1], kind="stable")  # the original's argmax order
    rows = rows[order]
    if _suppresses_everything(iou_threshold):
        return rows[:1]
    boxes = _corners_for_iou(rows[:, 2:], coords, border_pixels)

    def solve(subset):
        n = int(subset.sum())
        pairs = _suppression_pairs(boxes[subset], iou_threshold, border_pixels)
        return _greedy_select(np.arange(n), *pairs, n)

    return rows[_greedy_nms_top_k(solve, rows[:, 1], top_k)]


def _suppresses_everything(iou_threshold) -> bool:
    """IoUs are >= 0, so a negative (or NaN) threshold makes every pair suppress each other."""
    return not 0.0 <= iou_threshold


def _corners_for_iou(boxes: np.ndarray, coords: str, border_pixels: str) -> np.ndarray:
    """The corners `iou` itself would derive from ``boxes`` (so the IoUs are identical)."""
    if coords == "corners":
        return boxes
    from bounding_box_utils.bounding_box_utils import convert_coordinates

    return convert_coordinates(boxes, 0, f"{coords}2corners", border_pixels=border_pixels)


def _greedy_nms_top_k(solve, conf: np.ndarray, top_k) -> np.ndarray:
    """Greedy NMS of many candidates when only the ``top_k`` most confident survivors count.

    Whether a candidate survives depends only on the candidates of higher rank (higher
    confidence, or equal confidence and lower index), so the result on all candidates with
    confidence ``>= c`` is the full result restricted to them. Solving for the most confident
    ``4 * top_k`` (at least 1000) candidates first, and for 4x more until ``top_k`` survive,
    gives exactly the full result's ``top_k`` best. With an untrained model (every anchor a
    candidate of every class) this is what makes decoding fast.

    Args:
        solve: ``solve(subset_mask) -> keep mask over the subset`` (greedy NMS of that subset).
        conf: ``(n,)`` confidences of the candidates.
        top_k: an int, or ``'all'``.

    Returns:
        ``(n,)`` bool: the candidates that survive NMS and whose survival is decided (all
        survivors among the evaluated subset; candidates outside it are False, and the caller's
        top-k selection never needs them).
    """
    n = len(conf)
    keep = np.zeros(n, dtype=bool)
    size = n if top_k == "all" else max(4 * int(top_k), 1000)
    while True:
        if size >= n:
            keep[:] = solve(np.ones(n, dtype=bool))
            return keep
        threshold = np.partition(conf, n - size)[n - size]  # the size-th largest
        subset = conf >= threshold  # all ties included: closed under "higher rank"
        subset_keep = solve(subset)
        if subset_keep.sum() >= top_k:
            keep[subset] = subset_keep
            return keep
        size *= 4


def _grouped_greedy_nms(
    boxes: np.ndarray,
    anchor_idx: np.ndarray,
    class_idx: np.ndarray,
    iou_threshold: float,
    border_pixels: str,
) -> np.ndarray:
    """Per-class greedy NMS where all classes share the anchors' boxes.

    Args:
        boxes: ``(N, 4)`` corners of all anchors of one image.
        anchor_idx, class_idx: the candidate (anchor, class) nodes, sorted by class, then
            descending confidence, then anchor (the visiting order).

    Returns:
        ``(n_nodes,)`` bool: which nodes the greedy NMS of their class keeps.
    """
    n_nodes = len(anchor_idx)
    if n_nodes == 0:
        return np.zeros(0, dtype=bool)
    if _suppresses_everything(iou_threshold):
        keep = np.zeros(n_nodes, dtype=bool)
        keep[np.unique(class_idx, return_index=True)[1]] = True  # the first node of each class
        return keep
    n_classes = int(class_idx.max()) + 1
    candidates = np.zeros((len(boxes), n_classes), dtype=bool)
    candidates[anchor_idx, class_idx] = True
    active = np.nonzero(candidates.any(axis=1))[0]
    first, second = _suppression_pairs(boxes[active], iou_threshold, border_pixels)
    first, second = active[first], active[second]  # anchor pairs that suppress each other
    node_of = np.full(candidates.shape, -1, dtype=np.int64)
    node_of[anchor_idx, class_idx] = np.arange(n_nodes)
    # One edge per class in which both anchors are candidates.
    edge, cls = np.nonzero(candidates[first] & candidates[second])
    u = node_of[first[edge], cls]
    v = node_of[second[edge], cls]
    return _greedy_select(np.arange(n_nodes), u, v, n_nodes)


def _greedy_select(rank: np.ndarray, u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    """Greedy maximal independent set in the order of ``rank`` (lower rank is visited first).

    Node ``x`` is kept iff no kept node of lower rank shares an edge with it: exactly the result
    of visiting the nodes by rank and dropping the neighbours of each kept one. Resolved in
    rounds: a node is dropped as soon as a higher-ranked neighbour is kept and kept as soon as all
    its higher-ranked neighbours are dropped; every round decides at least the best undecided
    node, and the edge list shrinks as nodes are decided.
    """
    keep = np.ones(n, dtype=bool)
    if len(u) == 0:
        return keep
    src = np.where(rank[u] < rank[v], u, v)  # the higher-ranked end of each edge
    dst = np.where(rank[u] < rank[v], v, u)
    state = np.zeros(n, dtype=np.int8)  # 0 undecided, 1 kept, 2 dropped
    has_pred = np.zeros(n, dtype=bool)
    has_pred[dst] = True
    state[~has_pred] = 1
    while len(src):
        s_state = state[src]
        state[dst[s_state == 1]] = 2
        live = (state[src] != 2) & (state[dst] == 0)
        src, dst = src[live], dst[live]
        blocked = np.zeros(n, dtype=bool)
        blocked[dst] = True
        # Undecided nodes whose predecessors are all dropped (no live edge into them) are kept.
        newly_kept = (state == 0) & ~blocked
        state[newly_kept] = 1
        if not newly_kept.any() and not (s_state == 1).any():
            break  # cannot happen for a DAG; guards against an infinite loop
    keep = state == 1
    return keep


def _suppression_pairs(
    corners: np.ndarray, iou_threshold: float, border_pixels: str
) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``i < j`` of boxes that suppress each other: ``not iou(i, j) <= iou_threshold``.

    Args:
        corners: ``(M, 4)`` boxes ``[xmin, ymin, xmax, ymax]`` (float; the IoUs use this dtype).
        iou_threshold: the NMS threshold.
        border_pixels: ``'half'``, ``'include'`` or ``'exclude'``.

    Returns:
        Two int64 arrays ``(i, j)`` of equal length.
    """
    m = len(corners)
    empty = np.zeros(0, dtype=np.int64)
    if m < 2:
        return empty, empty
    d = border_offset(border_pixels)
    corners64 = corners.astype(np.float64)
    w = corners64[:, 2] - corners64[:, 0] + d
    h = corners64[:, 3] - corners64[:, 1] + d
    regular = np.isfinite(corners64).all(axis=1) & (w > 0) & (h > 0)
    # IoU > t > 0 needs overlapping boxes of similar size; a threshold >= 1 can only be exceeded
    # through rounding, by near-identical boxes, so a bound slightly below 1 finds those.
    t = min(float(iou_threshold), 0.999)
    if t <= 0 or not regular.all():
        # Rare cases (threshold 0, zero-size or non-finite boxes): the bounds below do not
        # hold, so every pair involving such a box is tested.
        odd = np.arange(m) if t <= 0 else np.nonzero(~regular)[0]
        pairs = [_all_pairs_with(corners, odd, iou_threshold, border_pixels)]
        ok = np.nonzero(regular)[0]
        if t > 0 and len(ok) >= 2:
            i, j = _candidate_pairs(corners64[ok], w[ok], h[ok], t)
            pairs.append(_filter_pairs(corners, ok[i], ok[j], iou_threshold, border_pixels))
        i = np.concatenate([p[0] for p in pairs])
        j = np.concatenate([p[1] for p in pairs])
        return i, j
    i, j = _candidate_pairs(corners64, w, h, t)
    return _filter_pairs(corners, i, j, iou_threshold, border_pixels)


def _filter_pairs(corners, i, j, iou_threshold, border_pixels):
    if len(i) == 0:
        return i, j
    ious = iou(corners[i], corners[j], "corners", "element-wise", border_pixels)
    suppress = ~(ious <= iou_threshold)
    return i[suppress], j[suppress]


def _all_pairs_with(corners, odd, iou_threshold, border_pixels):
    """Pairs ``i < j`` with at least one end in ``odd``, tested exhaustively."""
    m = len(corners)
    others = np.arange(m)
    i_all, j_all = [], []
    is_odd = np.zeros(m, dtype=bool)
    is_odd[odd] = True
    chunk = max(1, 2_000_000 // max(m, 1))
    for start in range(0, len(odd), chunk):
        rows = odd[start : start + chunk]
        i = np.repeat(rows, m)
        j = np.tile(others, len(rows))
        # Keep each unordered pair once: i < j, or j is not odd (then only found from i).
        sel = (i != j) & ((i < j) | ~is_odd[j])
        i, j = i[sel], j[sel]
        i, j = _filter_pairs(corners, i, j, iou_threshold, border_pixels)
        i_all.append(np.minimum(i, j))
        j_all.append(np.maximum(i, j))
    return np.concatenate(i_all), np.concatenate(j_all)


_SUB_BUCKETS = 3  # size buckets per factor 1 / t; finer buckets give tighter search windows


def _candidate_pairs(corners, w, h, t):
    """A superset of the pairs ``i < j`` of regular boxes (``w, h > 0``) with IoU > t.

    Uses two necessary conditions of IoU > t (0 < t < 1), with the side lengths including the
    border term: (a) ``t < w_i / w_j < 1 / t`` and the same for the heights, since the IoU is at
    most the ratio of the smaller to the larger side; (b) ``|cx_i - cx_j| < (w_i + w_j) / 2 -
    t * max(w_i, w_j)`` and the same in y, since the overlap width must exceed ``t`` times the
    larger width. Boxes are bucketed by ``(log w, log h)`` (``_SUB_BUCKETS`` buckets per factor
    ``1 / t``, so partners are at most that many buckets apart), each bucket is cut into
    horizontal bands and sorted by ``cx``; every box then searches the bands of the neighbouring
    buckets (those with a larger id, and its own) for its x-window.
    """
    k = _SUB_BUCKETS
    cx = (corners[:, 0] + corners[:, 2]) / 2.0
    cy = (corners[:, 1] + corners[:, 3]) / 2.0
    log_w, log_h = np.log(w), np.log(h)
    step = (np.log(1.0 / t) * (1 + 1e-9) + 1e-12) / k
    # Wider buckets are always safe (partners stay at most k apart); at most ~64 per axis.
    spread = max(np.ptp(log_w), np.ptp(log_h))
    step = max(step, spread / 64.0)
    bw = np.floor(log_w / step).astype(np.int64)
    bh = np.floor(log_h / step).astype(np.int64)
    bw -= bw.min()
    bh -= bh.min()
    n_bw, n_bh = int(bw.max()) + 1, int(bh.max()) + 1
    bucket = bw * n_bh + bh  # (M,)
    n_buckets = n_bw * n_bh

    # Per-bucket size ranges (tighter than the bucket edges).
    w_min = np.full(n_buckets, np.inf)
    w_max = np.zeros(n_buckets)
    h_min = np.full(n_buckets, np.inf)
    h_max = np.zeros(n_buckets)
    np.minimum.at(w_min, bucket, w)
    np.maximum.at(w_max, bucket, w)
    np.minimum.at(h_min, bucket, h)
    np.maximum.at(h_max, bucket, h)
    occupied = np.isfinite(w_min)

    # Bands about as high as the y-window of two equal boxes of the bucket's smallest height.
    x0, y0 = cx.min(), cy.min()
    band_h = np.where(occupied, np.maximum((1.0 - t) * h_min, 1e-12), 1.0)
    band = np.floor((cy - y0) / band_h[bucket]).astype(np.int64)
    n_bands = int(band.max()) + 1
    group = bucket * n_bands + band  # (M,) int64
    span = (cx.max() - x0) + 2.0 * float(np.max(w_max)) + 1.0  # > x-extent + any window
    order = np.lexsort((cx, group))
    group_sorted = group[order]
    is_first = np.ones(len(group_sorted), dtype=bool)
    is_first[1:] = group_sorted[1:] != group_sorted[:-1]
    groups = group_sorted[is_first]  # sorted unique group ids
    keys = (np.cumsum(is_first) - 1) * span + (cx[order] - x0)
    n_codes = n_buckets * n_bands
    if n_codes <= 4_000_000:  # dense lookup table: group id -> rank (-1 if empty)
        rank_of = np.full(n_codes, -1, dtype=np.int64)
        rank_of[groups] = np.arange(len(groups))
    else:
        rank_of = None

    # Queries: (box, neighbour bucket with an id >= its own).
    q_box, q_bucket = [], []
    for dbw in range(0, k + 1):
        for dbh in range(-k, k + 1):
            if dbw == 0 and dbh < 0:
                continue
            nbw, nbh = bw + dbw, bh + dbh
            ok = (nbw < n_bw) & (nbh >= 0) & (nbh < n_bh)
            nb = np.where(ok, nbw * n_bh + nbh, 0)
            ok &= occupied[nb]
            q_box.append(np.nonzero(ok)[0])
            q_bucket.append(nb[ok])
    q_box = np.concatenate(q_box)
    q_bucket = np.concatenate(q_bucket)
    wi, hi = w[q_box], h[q_box]
    # Window radii bound (b) over the target bucket's sizes; the ratio test (a) prunes buckets.
    rx = (wi + w_max[q_bucket]) / 2.0 - t * np.maximum(wi, w_min[q_bucket])
    ry = (hi + h_max[q_bucket]) / 2.0 - t * np.maximum(hi, h_min[q_bucket])
    possible = (
        (w_max[q_bucket] > t * wi)
        & (wi > t * w_min[q_bucket])
        & (h_max[q_bucket] > t * hi)
        & (hi > t * h_min[q_bucket])
    )
    # Slack for rounding: the exact IoU test decides; the windows only need to be wide enough.
    rx += 1e-6 * (wi + w_max[q_bucket]) + 1e-9 * np.abs(cx[q_box])
    ry += 1e-6 * (hi + h_max[q_bucket]) + 1e-9 * np.abs(cy[q_box])
    live = possible & (rx > 0) & (ry > 0)
    q_box, q_bucket, rx, ry = q_box[live], q_bucket[live], rx[live], ry[live]
    bh_q = band_h[q_bucket]
    band_lo = np.maximum(np.floor((cy[q_box] - ry - y0) / bh_q).astype(np.int64), 0)
    band_hi = np.minimum(np.floor((cy[q_box] + ry - y0) / bh_q).astype(np.int64), n_bands - 1)
    rep = np.maximum(band_hi - band_lo + 1, 0)
    qi = np.repeat(np.arange(len(q_box)), rep)
    q_group = q_bucket[qi] * n_bands + band_lo[qi] + _ranges(rep)
    if rank_of is not None:
        pos = rank_of[q_group]
        found = pos >= 0
    else:
        pos = np.minimum(np.searchsorted(groups, q_group), len(groups) - 1)
        found = groups[pos] == q_group
    qi, pos = qi[found], pos[found]
    base = pos * span + (cx[q_box[qi]] - x0)
    lo = np.searchsorted(keys, base - rx[qi], side="left")
    counts = np.searchsorted(keys, base + rx[qi], side="right") - lo
    nonzero = counts > 0
    qi, lo, counts = qi[nonzero], lo[nonzero], counts[nonzero]
    i = np.repeat(q_box[qi], counts)
    j = order[np.repeat(lo, counts) + _ranges(counts)]
    # Same bucket: found from both ends, keep i < j. Other buckets: found once.
    same = bucket[i] == bucket[j]
    keep = (i < j) | ~same
    i, j = i[keep], j[keep]
    # The exact per-pair windows (b), with slack for the rounding of the IoUs computed later.
    wi, wj, hi, hj = w[i], w[j], h[i], h[j]
    keep = np.abs(cx[i] - cx[j]) < (wi + wj) * (0.5 + 1e-5) - t * np.maximum(wi, wj)
    keep &= np.abs(cy[i] - cy[j]) < (hi + hj) * (0.5 + 1e-5) - t * np.maximum(hi, hj)
    i, j = i[keep], j[keep]
    return np.minimum(i, j), np.maximum(i, j)


def _ranges(counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(c) for c in counts])``, vectorised."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
