"""Box coordinate conversion, intersection area and IoU, in numpy.

Coordinate vocabulary (used across ssd-keras):

- ``'centroids'``: ``(cx, cy, w, h)``
- ``'minmax'``: ``(xmin, xmax, ymin, ymax)``
- ``'corners'``: ``(xmin, ymin, xmax, ymax)``

``border_pixels`` says how the border pixels of a box with integer pixel coordinates count:

- ``'half'``: ``w = xmax - xmin`` (border pixels half in, half out; continuous coordinates),
- ``'include'``: ``w = xmax - xmin + 1`` (both border pixels belong to the box; Pascal VOC's rule),
- ``'exclude'``: ``w = xmax - xmin - 1`` (neither border pixel belongs to the box).

Ground-truth labels everywhere in ssd-keras are rows laid out as `LABEL_FORMAT`.
"""

from __future__ import annotations

import numpy as np

LABEL_FORMAT = ("class_id", "xmin", "ymin", "xmax", "ymax")
"""Column order of a ground-truth label row, in absolute pixels."""

COORDS = ("centroids", "minmax", "corners")
BORDER_PIXELS = {"half": 0, "include": 1, "exclude": -1}
CONVERSIONS = (
    "minmax2centroids",
    "centroids2minmax",
    "corners2centroids",
    "centroids2corners",
    "minmax2corners",
    "corners2minmax",
)
IOU_MODES = ("outer_product", "element-wise")

# Index of (xmin, ymin, xmax, ymax) inside a box of each format that holds those values directly.
_CORNER_ORDER = {"corners": (0, 1, 2, 3), "minmax": (0, 2, 1, 3)}


def border_offset(border_pixels: str) -> int:
    """Returns the term added to ``max - min`` to get a box side length.

    Args:
        border_pixels: ``'half'``, ``'include'`` or ``'exclude'``.

    Returns:
        0, +1 or -1.

    Raises:
        ValueError: for any other value.
    """
    try:
        return BORDER_PIXELS[border_pixels]
    except (KeyError, TypeError):
        raise ValueError(
            f"border_pixels must be one of {sorted(BORDER_PIXELS)}, got {border_pixels!r}"
        ) from None


def check_coords(coords: str, name: str = "coords") -> str:
    """Raises a ValueError naming the argument unless ``coords`` is a known box format."""
    if coords not in COORDS:
        raise ValueError(f"{name} must be one of {list(COORDS)}, got {coords!r}")
    return coords


def _as_float_array(tensor) -> np.ndarray:
    """A float copy of ``tensor``: float inputs keep their dtype, the rest become float64."""
    array = np.array(tensor, copy=True)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def convert_coordinates(
    tensor, start_index: int, conversion: str, border_pixels: str = "half"
) -> np.ndarray:
    """Converts box coordinates between the three formats.

    The four values starting at ``start_index`` of the last axis are converted; everything else is
    copied unchanged. The ``border_pixels`` term is added to the side lengths on the way to
    ``'centroids'`` and taken off again on the way back, so every conversion round-trips exactly
    (the original added it one way only).

    Args:
        tensor: array of shape ``(..., k)`` with ``k >= 4``.
        start_index: position of the first box coordinate on the last axis; negative values
            count from the end as numpy indices do (``-4``: the last four columns). The four
            columns ``start_index .. start_index + 3`` must all be valid indices.
        conversion: one of ``'minmax2centroids'``, ``'centroids2minmax'``, ``'corners2centroids'``,
            ``'centroids2corners'``, ``'minmax2corners'``, ``'corners2minmax'``.
        border_pixels: ``'half'``, ``'include'`` or ``'exclude'`` (see the module docstring).

    Returns:
        A new float array of the same shape (float inputs keep their dtype, others become float64).

    Example:
        >>> convert_coordinates(np.array([[10, 20, 30, 60]]), 0, "corners2centroids")
        array([[20., 40., 20., 40.]])
    """
    d = border_offset(border_pixels)
    if conversion not in CONVERSIONS:
        raise ValueError(f"conversion must be one of {list(CONVERSIONS)}, got {conversion!r}")
    out = _as_float_array(tensor)
    columns = _box_columns(out.shape, start_index)
    source = out[..., columns].copy()
    source_format, target_format = conversion.split("2")

    if source_format == "centroids":
        cx, cy, w, h = np.moveaxis(source, -1, 0)
        half_w, half_h = (w - d) / 2.0, (h - d) / 2.0
        xmin, ymin, xmax, ymax = cx - half_w, cy - half_h, cx + half_w, cy + half_h
    else:
        a, b, c, e = _CORNER_ORDER[source_format]
        xmin, ymin, xmax, ymax = source[..., a], source[..., b], source[..., c], source[..., e]

    if target_format == "centroids":
        values = ((xmin + xmax) / 2.0, (ymin + ymax) / 2.0, xmax - xmin + d, ymax - ymin + d)
    elif target_format == "corners":
        values = (xmin, ymin, xmax, ymax)
    else:
        values = (xmin, xmax, ymin, ymax)
    for column, value in zip(columns, values):
        out[..., column] = value
    return out


def _box_columns(shape: tuple, start_index: int) -> list[int]:
    """The last-axis columns ``start_index, start_index + 1, ..., start_index + 3``.

    As in the original, these are plain numpy indices, so a negative ``start_index`` counts from
    the end: ``-4`` means the last four columns (the original's own decoder calls it that way).
    """
    size = shape[-1] if shape else 0
    index = int(start_index)
    if size < 4 or not -size <= index or index + 3 >= size:
        raise ValueError(
            f"start_index={start_index!r} needs the four columns start_index .. start_index + 3 "
            f"on the last axis (size >= 4, -size <= start_index <= size - 4), got shape "
            f"{tuple(shape)}"
        )
    return [index + k for k in range(4)]


def _prepare_box_pair(boxes1, boxes2, mode: str) -> tuple[np.ndarray, np.ndarray]:
    if mode not in IOU_MODES:
        raise ValueError(f"mode must be one of {list(IOU_MODES)}, got {mode!r}")
    boxes1 = _as_float_array(boxes1)
    boxes2 = _as_float_array(boxes2)
    if boxes1.ndim == 1:
        boxes1 = boxes1[None, :]
    if boxes2.ndim == 1:
        boxes2 = boxes2[None, :]
    for name, boxes in (("boxes1", boxes1), ("boxes2", boxes2)):
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"{name} must have shape (n, 4) or (4,), got {boxes.shape}")
    m, n = boxes1.shape[0], boxes2.shape[0]
    if mode == "element-wise" and m != n and 1 not in (m, n):
        raise ValueError(
            "mode='element-wise' needs as many boxes in boxes1 as in boxes2, or a single box on "
            f"one side (broadcast against every box of the other), got {m} and {n}"
        )
    return boxes1, boxes2


def to_corners(boxes: np.ndarray, coords: str, border_pixels: str = "half") -> np.ndarray:
    """``(..., 4)`` boxes in ``coords`` format as corners ``(xmin, ymin, xmax, ymax)``.

    The one conversion every IoU here uses (`iou`, the encoder's matching, greedy NMS), so
    they all see the same corners bit for bit. ``'corners'`` boxes are returned as they are
    (not copied); the others go through `convert_coordinates` (a new array).
    """
    if coords == "corners":
        return boxes
    return convert_coordinates(boxes, 0, f"{coords}2corners", border_pixels=border_pixels)


def _intersection_corners(boxes1, boxes2, mode: str, d: int) -> np.ndarray:
    """Intersection areas of boxes already in ``'corners'`` format."""
    if mode == "outer_product":
        boxes1, boxes2 = boxes1[:, None, :], boxes2[None, :, :]
    min_xy = np.maximum(boxes1[..., :2], boxes2[..., :2])
    max_xy = np.minimum(boxes1[..., 2:], boxes2[..., 2:])
    sides = np.maximum(0.0, max_xy - min_xy + d)
    return sides[..., 0] * sides[..., 1]


def intersection_area(
    boxes1,
    boxes2,
    coords: str = "centroids",
    mode: str = "outer_product",
    border_pixels: str = "half",
) -> np.ndarray:
    """Intersection areas of two sets of boxes.

    Args:
        boxes1: ``(m, 4)`` or ``(4,)`` boxes in ``coords`` format.
        boxes2: ``(n, 4)`` or ``(4,)`` boxes in ``coords`` format.
        coords: ``'centroids'``, ``'minmax'`` or ``'corners'``.
        mode: ``'outer_product'`` gives every pair, shape ``(m, n)``; ``'element-wise'`` pairs
            row i with row i, shape ``(max(m, n),)``: ``m == n``, or one side holds a single
            box (``(4,)`` or ``(1, 4)``), which numpy broadcasts against every box of the other.
        border_pixels: ``'half'``, ``'include'`` or ``'exclude'``.

    Returns:
        The intersection areas, ``(m, n)`` or ``(m,)``.
    """
    check_coords(coords)
    d = border_offset(border_pixels)
    boxes1, boxes2 = _prepare_box_pair(boxes1, boxes2, mode)
    boxes1 = to_corners(boxes1, coords, border_pixels)
    boxes2 = to_corners(boxes2, coords, border_pixels)
    return _intersection_corners(boxes1, boxes2, mode, d)


def iou(
    boxes1,
    boxes2,
    coords: str = "centroids",
    mode: str = "outer_product",
    border_pixels: str = "half",
) -> np.ndarray:
    """Intersection over union (Jaccard overlap) of two sets of boxes.

    ``border_pixels`` applies to the intersection and to both areas alike, so ``iou(b, b) == 1``
    for every box and every setting (the original left it out of the intersection).

    Args:
        boxes1: ``(m, 4)`` or ``(4,)`` boxes in ``coords`` format.
        boxes2: ``(n, 4)`` or ``(4,)`` boxes in ``coords`` format.
        coords: ``'centroids'``, ``'minmax'`` or ``'corners'``.
        mode: ``'outer_product'`` -> ``(m, n)``; ``'element-wise'`` -> ``(max(m, n),)`` (needs
            ``m == n`` or a single box on one side, broadcast as in the original).
        border_pixels: ``'half'``, ``'include'`` or ``'exclude'``.

    Returns:
        IoU values in ``[0, 1]``, ``(m, n)`` or ``(m,)``. A pair whose union is empty (two
        zero-area boxes) has IoU 0.

    Example:
        >>> iou([0, 0, 10, 10], [5, 0, 15, 10], coords="corners")
        array([[0.33333333]])
    """
    check_coords(coords)
    d = border_offset(border_pixels)
    boxes1, boxes2 = _prepare_box_pair(boxes1, boxes2, mode)
    boxes1 = to_corners(boxes1, coords, border_pixels)
    boxes2 = to_corners(boxes2, coords, border_pixels)

    intersection = _intersection_corners(boxes1, boxes2, mode, d)
    areas1 = (boxes1[:, 2] - boxes1[:, 0] + d) * (boxes1[:, 3] - boxes1[:, 1] + d)
    areas2 = (boxes2[:, 2] - boxes2[:, 0] + d) * (boxes2[:, 3] - boxes2[:, 1] + d)
    if mode == "outer_product":
        union = areas1[:, None] + areas2[None, :] - intersection
    else:
        union = areas1 + areas2 - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)
    return result
