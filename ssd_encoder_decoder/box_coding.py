"""SSD box coding: ground-truth boxes <-> offsets from their anchors (numpy).

The one home of the offset formulas. `SSDInputEncoder` encodes with `encode_boxes`;
`decode_detections`, `decode_detections_fast` and `decode_detections_debug` decode with
`decode_boxes`. The `keras.ops` form with the same names and the same test cases is in
`keras_layers/detection_ops.py` (used by the `DecodeDetections*` layers).

Boxes, anchors and offsets are in the same ``coords`` format (``v`` = variances, ``a`` = anchor):

- ``'centroids'`` ``(cx, cy, w, h)``: ``((cx - cx_a) / w_a / v0, (cy - cy_a) / h_a / v1,
  ln(w / w_a) / v2, ln(h / h_a) / v3)``;
- ``'corners'`` ``(xmin, ymin, xmax, ymax)``: ``(xmin - xmin_a, ymin - ymin_a, xmax - xmax_a,
  ymax - ymax_a)`` divided by ``(w_a, h_a, w_a, h_a)`` and by the variances;
- ``'minmax'`` ``(xmin, xmax, ymin, ymax)``: the same in that order, divided by
  ``(w_a, w_a, h_a, h_a)`` and by the variances.

Invariant: ``decode_boxes(encode_boxes(b, a, v, c), a, v, c) == b`` up to rounding, for every
``coords`` ``c`` (tested on random boxes). Anchor sides are ``max - min`` (no ``border_pixels``
term), as in the original.

The operations and their order are the original's (its encoder's and its numpy decoder's), so the
values are identical to the original's bit for bit.
"""

from __future__ import annotations

import numpy as np

from bounding_box_utils.bounding_box_utils import check_coords

__all__ = ["decode_boxes", "encode_boxes"]

# Columns of (x, x) and (y, y) values and where the anchor width/height comes from, per format.
_X_COLUMNS = {"corners": [0, 2], "minmax": [0, 1]}
_Y_COLUMNS = {"corners": [1, 3], "minmax": [2, 3]}
_ANCHOR_SIDES = {"corners": ((2, 0), (3, 1)), "minmax": ((1, 0), (3, 2))}


def _float_copy_and_arrays(values, anchors, variances, coords: str):
    """A float copy of ``values`` (float64 unless already float), and the other two as arrays."""
    check_coords(coords)
    out = np.array(values, copy=True)
    if not np.issubdtype(out.dtype, np.floating):
        out = out.astype(np.float64)
    return out, np.asarray(anchors), np.asarray(variances)


def _anchor_sides(anchors: np.ndarray, coords: str) -> tuple[np.ndarray, np.ndarray]:
    """``(w_a, h_a)`` of ``'corners'`` or ``'minmax'`` anchors, each ``(..., 1)``."""
    (x1, x0), (y1, y0) = _ANCHOR_SIDES[coords]
    return (anchors[..., x1] - anchors[..., x0])[..., None], (anchors[..., y1] - anchors[..., y0])[
        ..., None
    ]


def encode_boxes(gt, anchors, variances, coords: str = "centroids") -> np.ndarray:
    """Offsets of boxes from their anchors (the SSD training targets).

    Args:
        gt: ``(..., 4)`` boxes in ``coords`` format.
        anchors: ``(..., 4)`` anchors in ``coords`` format, one per box (broadcastable).
        variances: ``(4,)`` or ``(..., 4)`` positive values the offsets are divided by.
        coords: ``'centroids'``, ``'minmax'`` or ``'corners'``.

    Returns:
        ``(..., 4)`` offsets (a new float array; ``gt``'s dtype if it is a float array).

    Example:
        >>> encode_boxes(np.array([[0.5, 0.5, 0.2, 0.2]]), np.array([[0.4, 0.5, 0.1, 0.4]]),
        ...              np.array([0.1, 0.1, 0.2, 0.2]))  # (0.1 / 0.1 / 0.1, 0, ln 2 / 0.2, ...)
        array([[10.       ,  0.       ,  3.4657359, -3.4657359]])
    """
    out, anchors, v = _float_copy_and_arrays(gt, anchors, variances, coords)
    if coords == "centroids":
        out[..., [0, 1]] -= anchors[..., [0, 1]]
        out[..., [0, 1]] /= anchors[..., [2, 3]] * v[..., [0, 1]]
        out[..., [2, 3]] /= anchors[..., [2, 3]]
        out[..., [2, 3]] = np.log(out[..., [2, 3]]) / v[..., [2, 3]]
        return out
    a_w, a_h = _anchor_sides(anchors, coords)
    out -= anchors
    out[..., _X_COLUMNS[coords]] /= a_w
    out[..., _Y_COLUMNS[coords]] /= a_h
    out /= v
    return out


def decode_boxes(offsets, anchors, variances, coords: str = "centroids") -> np.ndarray:
    """Boxes from their offsets and anchors: the inverse of `encode_boxes`.

    Args:
        offsets: ``(..., 4)`` offsets (e.g. a model's predictions).
        anchors: ``(..., 4)`` anchors in ``coords`` format (broadcastable to ``offsets``).
        variances: ``(4,)`` or ``(..., 4)`` variances the offsets were divided by.
        coords: ``'centroids'``, ``'minmax'`` or ``'corners'``.

    Returns:
        ``(..., 4)`` boxes in ``coords`` format (a new array; ``offsets``' dtype if float).
        `bounding_box_utils.to_corners` turns them into corners.

    Example:
        >>> decode_boxes(np.array([[10.0, 0.0, 3.4657359, -3.4657359]]),
        ...              np.array([[0.4, 0.5, 0.1, 0.4]]), np.array([0.1, 0.1, 0.2, 0.2]))
        array([[0.5, 0.5, 0.2, 0.2]])
    """
    boxes, anchors, v = _float_copy_and_arrays(offsets, anchors, variances, coords)
    if coords == "centroids":
        boxes[..., [2, 3]] = np.exp(boxes[..., [2, 3]] * v[..., [2, 3]])
        boxes[..., [2, 3]] *= anchors[..., [2, 3]]
        boxes[..., [0, 1]] *= v[..., [0, 1]] * anchors[..., [2, 3]]
        boxes[..., [0, 1]] += anchors[..., [0, 1]]
        return boxes
    a_w, a_h = _anchor_sides(anchors, coords)
    boxes *= v
    boxes[..., _X_COLUMNS[coords]] *= a_w
    boxes[..., _Y_COLUMNS[coords]] *= a_h
    boxes += anchors
    return boxes
