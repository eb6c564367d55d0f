"""One image's labels as an array, and the coordinate values they are read from.

Labels are one array per image, shape `(n_boxes, 5)`, with the columns in
``labels_output_format`` (by default ``('class_id', 'xmin', 'ymin', 'xmax', 'ymax')``, absolute
pixels, see `bounding_box_utils.LABEL_FORMAT`). Integer coordinates give an int64 array, any
fractional coordinate a float64 array.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

DEFAULT_LABELS_OUTPUT_FORMAT = ("class_id", "xmin", "ymin", "xmax", "ymax")


def parse_number(text: str | None) -> int | float:
    """'12' -> 12, '12.0' -> 12, '12.5' -> 12.5; raises ValueError for anything else."""
    if text is None:
        raise ValueError("missing value")
    value = float(text.strip())
    if not np.isfinite(value):
        raise ValueError(f"not a finite number: {text.strip()!r}")
    return int(value) if value.is_integer() else value


def labels_array(rows: Iterable[Sequence[float]] | np.ndarray, n_columns: int = 5) -> np.ndarray:
    """Rows of one image's labels as an `(n_boxes, n_columns)` array.

    int64 when every value is integral (the original's lists of ints), float64 otherwise; an image
    without boxes gives shape `(0, n_columns)` (not `(0,)`).
    """
    array = np.asarray(rows)
    if array.size == 0:
        return np.zeros((0, n_columns), dtype=np.int64)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        array = array.astype(np.float64)
    array = array.reshape(-1, n_columns)
    if np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0):
        return array.astype(np.int64)
    return array


def degenerate_mask(labels: np.ndarray, labels_format: dict[str, int]) -> np.ndarray:
    """True for each box with ``xmax <= xmin`` or ``ymax <= ymin`` (the BoxFilter criterion)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(labels.shape[:1], dtype=bool)
    xmin, ymin = labels[:, labels_format["xmin"]], labels[:, labels_format["ymin"]]
    xmax, ymax = labels[:, labels_format["xmax"]], labels[:, labels_format["ymax"]]
    return ~((xmax > xmin) & (ymax > ymin))
