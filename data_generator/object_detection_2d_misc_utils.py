"""Helpers shared by the transforms, and `apply_inverse_transforms`.

Every transform in ``data_generator`` is a callable ``op(image, labels=None)``:

- ``image``: ``(height, width, channels)`` or ``(height, width)`` array;
- ``labels``: ``None`` (inference: only the image is returned) or a ``(k, 5+)`` array of
  ground-truth rows laid out as ``labels_format`` (default `DEFAULT_LABELS_FORMAT`:
  ``class_id, xmin, ymin, xmax, ymax`` in absolute pixels; extra columns are carried along);
- ops with an inverse accept ``return_inverter=True`` and then also return ``inverter``, a function
  that maps predictions ``(n, 6+)`` rows ``[class_id, conf, xmin, ymin, xmax, ymax]`` made on the
  transformed image back to the coordinates of the input image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from bounding_box_utils.bounding_box_utils import LABEL_FORMAT

DEFAULT_LABELS_FORMAT: dict[str, int] = {name: i for i, name in enumerate(LABEL_FORMAT)}
"""``{'class_id': 0, 'xmin': 1, 'ymin': 2, 'xmax': 3, 'ymax': 4}``, the original's default."""

Inverter = Callable[[np.ndarray], np.ndarray]


def resolve_labels_format(labels_format: Mapping[str, int] | None) -> dict[str, int]:
    """Returns ``labels_format`` (or the default) after checking it names the four corners."""
    if labels_format is None:
        return dict(DEFAULT_LABELS_FORMAT)
    missing = [key for key in ("xmin", "ymin", "xmax", "ymax") if key not in labels_format]
    if missing:
        raise ValueError(f"labels_format misses the keys {missing}, got {dict(labels_format)!r}")
    return dict(labels_format)


def corner_indices(labels_format: Mapping[str, int]) -> tuple[int, int, int, int]:
    """The columns ``(xmin, ymin, xmax, ymax)`` of a label row."""
    return (
        labels_format["xmin"],
        labels_format["ymin"],
        labels_format["xmax"],
        labels_format["ymax"],
    )


def as_labels(labels) -> np.ndarray | None:
    """A private copy of ``labels`` as a 2-D array (``None`` stays ``None``)."""
    if labels is None:
        return None
    labels = np.array(labels, copy=True)
    if labels.ndim != 2:
        raise ValueError(f"labels must have shape (k, 5+), got shape {labels.shape}")
    return labels


def shift_boxes(
    boxes, dy: float, dx: float, labels_format: Mapping[str, int], offset: int = 0
) -> np.ndarray:
    """A copy of ``boxes`` with their corners moved by ``(dy, dx)``.

    ``offset`` is 0 for label rows and 1 for prediction rows (``conf`` follows ``class_id``).
    """
    xmin, ymin, xmax, ymax = (i + offset for i in corner_indices(labels_format))
    boxes = np.array(boxes, copy=True)
    boxes[:, [ymin, ymax]] += dy
    boxes[:, [xmin, xmax]] += dx
    return boxes


def clip_boxes(labels: np.ndarray, height: int, width: int, labels_format: Mapping[str, int]):
    """Clips box corners in place to ``[0, width - 1] x [0, height - 1]`` (the original's rule)."""
    xmin, ymin, xmax, ymax = corner_indices(labels_format)
    labels[:, [ymin, ymax]] = np.clip(labels[:, [ymin, ymax]], 0, height - 1)
    labels[:, [xmin, xmax]] = np.clip(labels[:, [xmin, xmax]], 0, width - 1)
    return labels


def pack_output(image, labels, inverter=None, return_inverter: bool = False):
    """The uniform return value: ``image`` or ``(image, labels)``, plus ``inverter`` on request."""
    if labels is None:
        return (image, inverter) if return_inverter else image
    return (image, labels, inverter) if return_inverter else (image, labels)


def identity_inverter(predictions: np.ndarray) -> np.ndarray:
    """The inverter of a transform that did not change the geometry."""
    return np.copy(predictions)


def draws(rng, prob: float) -> bool:
    """One Bernoulli draw as in the original: true when ``uniform(0, 1) >= 1 - prob``."""
    return rng.uniform(0.0, 1.0) >= (1.0 - prob)


def check_prob(prob: float, name: str = "prob") -> float:
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {prob!r}")
    return prob


def call_transform(transform, image, labels=None, return_inverter: bool = False):
    """Calls one transform and always returns ``(image, labels, inverter)``.

    ``labels`` stays ``None`` when it was ``None``; ``inverter`` is ``None`` unless requested (the
    transform must then accept ``return_inverter``). This lets a chain run the same loop for
    training (with labels) and inference (without).
    """
    if return_inverter:
        out = transform(image, labels, return_inverter=True)
    else:
        out = transform(image, labels)
    if labels is None:
        image, inverter = out if return_inverter else (out, None)
        return image, None, inverter
    if return_inverter:
        return out
    image, labels = out
    return image, labels, None


def set_labels_format(transforms, labels_format: Mapping[str, int]) -> None:
    """Hands ``labels_format`` to every transform of a chain that has one."""
    for transform in transforms:
        if hasattr(transform, "labels_format"):
            transform.labels_format = labels_format


def apply_inverse_transforms(
    y_pred_decoded: np.ndarray | Sequence[np.ndarray],
    inverse_transforms: Sequence[Inverter | None] | Sequence[Sequence[Inverter | None]],
):
    """Maps decoded predictions back to the coordinates of the original images.

    The one implementation; `ssd_output_decoder.apply_inverse_transforms` (always a batch)
    calls `apply_inverse_transforms_per_image` below.

    Args:
        y_pred_decoded: one of
            - a ``(n, 6+)`` array: one image's rows ``[class_id, conf, xmin, ymin, xmax, ymax]``;
            - a list (or tuple) of such arrays, one per batch item;
            - a ``(batch, n, 6+)`` array: a batch, as in the original (each item's inverters must
              keep its shape).
        inverse_transforms: for one image, the inverters in the order they must be applied (the
            last transform's inverter first, as `DataGenerator.generate` returns them); for a batch,
            one such list per item. ``None`` entries are skipped.

    Returns:
        A new array (or list of arrays) of the same structure; the inputs are not modified.

    Example:
        >>> resize = Resize(height=300, width=300)
        >>> image, inverter = resize(np.zeros((150, 600, 3), np.uint8), return_inverter=True)
        >>> apply_inverse_transforms(np.array([[1, 0.9, 30, 30, 60, 60]]), [inverter])
        array([[  1. ,   0.9,  60. ,  15. , 120. ,  30. ]])
    """
    if isinstance(y_pred_decoded, np.ndarray):
        if y_pred_decoded.ndim == 3:
            inverted = apply_inverse_transforms_per_image(y_pred_decoded, inverse_transforms)
            return np.stack(inverted).astype(y_pred_decoded.dtype, copy=False)
        return _invert_image(y_pred_decoded, inverse_transforms)
    if isinstance(y_pred_decoded, (list, tuple)):
        return apply_inverse_transforms_per_image(y_pred_decoded, inverse_transforms)
    raise ValueError(
        "y_pred_decoded must be a numpy array or a list of arrays, "
        f"got {type(y_pred_decoded).__name__}"
    )


def apply_inverse_transforms_per_image(
    y_pred_decoded: np.ndarray | Sequence[np.ndarray],
    inverse_transforms: Sequence[Sequence[Inverter | None] | None],
) -> list[np.ndarray]:
    """`apply_inverse_transforms` for a batch: always one item per image, a list back.

    Args:
        y_pred_decoded: per image, a ``(k, 6+)`` array (a ``(batch, k, 6+)`` array also works).
        inverse_transforms: per image, a sequence of inverters (or None), applied in order.

    Returns:
        A new list with one array per image; the input is not modified. Images without
        predictions are passed through unchanged.
    """
    if len(y_pred_decoded) != len(inverse_transforms):
        raise ValueError(
            f"y_pred_decoded has {len(y_pred_decoded)} batch items but inverse_transforms has "
            f"{len(inverse_transforms)} entries"
        )
    return [
        _invert_image(rows, inverters)
        for rows, inverters in zip(y_pred_decoded, inverse_transforms)
    ]


def _invert_image(predictions, inverters) -> np.ndarray:
    """A copy of one image's predictions with its inverters applied in order (if any rows)."""
    out = np.array(predictions, copy=True)
    if out.size == 0:
        return out
    for inverter in inverters or ():
        if inverter is not None:
            out = inverter(out)
    return out
