"""Decodes SSD model output into detections, with greedy non-maximum suppression (numpy).

- `decode_detections`: per class, confidence ``> confidence_thresh``, greedy NMS, then the
  ``top_k`` most confident detections over all classes (the original ssd_keras algorithm).
- `decode_detections_fast`: one class per anchor (argmax over all classes, background included),
  confidence ``>= confidence_thresh``, one class-agnostic greedy NMS.
- `greedy_nms`: class-agnostic greedy NMS of already decoded detections (from `nms`).
- `decode_detections_debug`: `decode_detections` plus, per detection, the index of the anchor
  it came from; `get_num_boxes_per_pred_layer` and `get_pred_layers` map that index to the
  predictor layer.
- `apply_inverse_transforms`: maps detections back to the original images (the hook the
  evaluator and inference use; both decoders also take ``inverse_transforms=``).

Detections are rows ``[class_id, confidence, xmin, ymin, xmax, ymax]`` (absolute pixels when
``normalize_coords``), one ``(k, 6)`` array per image, **sorted by descending confidence** (the
original returned the ``top_k`` rows in arbitrary order; ties keep class order, then anchor order).

Greedy NMS (the original's, exactly; vectorised) is in `ssd_encoder_decoder.nms`; `greedy_nms` is
re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from bounding_box_utils.bounding_box_utils import border_offset, check_coords, to_corners
from ssd_encoder_decoder import box_coding
from ssd_encoder_decoder.anchor_boxes import n_boxes_per_location
from ssd_encoder_decoder.nms import (
    greedy_nms,
    greedy_nms_most_confident,
    greedy_nms_rows,
    grouped_greedy_nms,
)

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
            keep[order] = grouped_greedy_nms(
                boxes, anchors[order], classes[order], iou_threshold, border_pixels
            )
            return keep

        kept = np.nonzero(greedy_nms_most_confident(solve, conf, top_k))[0]
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
            rows = greedy_nms_rows(rows, iou_threshold, border_pixels, top_k=top_k)
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


def apply_inverse_transforms(y_pred_decoded, inverse_transforms) -> list[np.ndarray]:
    """Maps decoded detections back to the original images (always a batch).

    `data_generator.object_detection_2d_misc_utils.apply_inverse_transforms_per_image` (the one
    implementation). Unlike `data_generator`'s `apply_inverse_transforms`, an array is always a
    batch here and a list always comes back.

    Args:
        y_pred_decoded: per image, a ``(k, 6)`` array ``[class_id, confidence, xmin, ymin, xmax,
            ymax]`` (a ``(batch, k, 6)`` array also works).
        inverse_transforms: per image, a sequence of callables ``rows -> rows`` (None entries
            are skipped), applied in order, e.g. the inverters the data generator returns.

    Returns:
        A new list of arrays; the input is not modified. Images without detections are passed
        through unchanged.
    """
    # Imported here: the data_generator package pulls in OpenCV, which decoding does not need.
    from data_generator.object_detection_2d_misc_utils import apply_inverse_transforms_per_image

    return apply_inverse_transforms_per_image(y_pred_decoded, inverse_transforms)


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
