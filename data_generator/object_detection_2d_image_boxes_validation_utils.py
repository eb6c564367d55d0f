"""Deciding which boxes survive a transform and whether a transformed image is acceptable.

- `BoundGenerator` draws an ``(lower, upper)`` overlap bound pair from a fixed sample space (the
  Caffe SSD random crop draws its minimum IoU this way).
- `BoxFilter` keeps the label rows that pass the degenerate / minimum-area / overlap checks.
- `ImageValidator` says whether enough boxes overlap an image (or patch) well enough.
- `first_accepted` / `validates`: the retry loop of the random ops (draw, validate, retry).

Overlap criteria between a box and an image of height ``H`` and width ``W``:

- ``'center_point'``: the box centre lies in ``[0, W - 1] x [0, H - 1]``;
- ``'iou'``: ``lower < IoU(box, [0, 0, W, H]) <= upper``;
- ``'area'``: the fraction of the box area left after clipping the box to
  ``[0, W - 1] x [0, H - 1]`` is ``>= lower`` (``> lower`` when ``lower == 0``, so zero-area boxes
  never count) and ``<= upper``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from bounding_box_utils.bounding_box_utils import border_offset, iou
from data_generator.object_detection_2d_misc_utils import (
    corner_indices,
    resolve_labels_format,
)

OVERLAP_CRITERIA = ("center_point", "iou", "area")
T = TypeVar("T")


class BoundGenerator:
    """Draws one ``[lower, upper]`` pair out of a sample space.

    Args:
        sample_space: sequence of ``(lower, upper)`` pairs; ``None`` stands for 0.0 (lower) or
            1.0 (upper).
        weights: probabilities of the pairs (uniform when ``None``).
        rng: ``None``, an int seed or a ``numpy.random.Generator``.

    Example:
        >>> BoundGenerator(((0.1, None), (None, None)), rng=0)()
        [0.1, 1.0]
    """

    def __init__(
        self,
        sample_space: Sequence[Sequence[float | None]] = (
            (0.1, None),
            (0.3, None),
            (0.5, None),
            (0.7, None),
            (0.9, None),
            (None, None),
        ),
        weights: Sequence[float] | None = None,
        rng=None,
    ):
        if weights is not None and len(weights) != len(sample_space):
            raise ValueError(
                f"weights must have one entry per sample_space pair ({len(sample_space)}), "
                f"got {len(weights)}"
            )
        self.sample_space = []
        for pair in sample_space:
            if len(pair) != 2:
                raise ValueError(f"each sample_space entry must be a pair, got {pair!r}")
            lower = 0.0 if pair[0] is None else float(pair[0])
            upper = 1.0 if pair[1] is None else float(pair[1])
            if lower > upper:
                raise ValueError(f"a bound pair needs lower <= upper, got {pair!r}")
            self.sample_space.append([lower, upper])
        self.sample_space_size = len(self.sample_space)
        n = self.sample_space_size
        self.weights = [1.0 / n] * n if weights is None else list(weights)
        self.rng = np.random.default_rng(rng)

    def __call__(self) -> list[float]:
        i = self.rng.choice(self.sample_space_size, p=self.weights)
        return list(self.sample_space[i])


class BoxFilter:
    """Keeps the label rows that pass the enabled checks.

    Args:
        check_overlap: apply ``overlap_criterion`` with ``overlap_bounds``.
        check_min_area: keep boxes with ``(xmax - xmin) * (ymax - ymin) >= min_area``.
        check_degenerate: keep boxes with ``xmax > xmin`` and ``ymax > ymin``.
        overlap_criterion: ``'center_point'``, ``'iou'`` or ``'area'`` (see the module docstring).
        overlap_bounds: ``(lower, upper)`` or a `BoundGenerator` drawn at every call (unused by
            ``'center_point'``).
        min_area: minimum box area in pixels.
        labels_format: column indices of the label rows.
        border_pixels: ``'half'``, ``'include'`` or ``'exclude'`` (box sizes for ``'iou'`` and
            ``'area'``).

    Call:
        ``box_filter(labels, image_height=None, image_width=None)`` with ``labels`` ``(k, 5+)``
        returns the kept rows ``(k', 5+)``, in order. The image size is needed for the overlap
        check only.
    """

    def __init__(
        self,
        check_overlap: bool = True,
        check_min_area: bool = True,
        check_degenerate: bool = True,
        overlap_criterion: str = "center_point",
        overlap_bounds=(0.3, 1.0),
        min_area: float = 16,
        labels_format: Mapping[str, int] | None = None,
        border_pixels: str = "half",
    ):
        if not isinstance(overlap_bounds, (list, tuple, BoundGenerator)):
            raise ValueError(
                "overlap_bounds must be a (lower, upper) pair or a BoundGenerator, "
                f"got {overlap_bounds!r}"
            )
        if isinstance(overlap_bounds, (list, tuple)) and overlap_bounds[0] > overlap_bounds[1]:
            raise ValueError(f"overlap_bounds needs lower <= upper, got {overlap_bounds!r}")
        if overlap_criterion not in OVERLAP_CRITERIA:
            raise ValueError(
                f"overlap_criterion must be one of {list(OVERLAP_CRITERIA)}, "
                f"got {overlap_criterion!r}"
            )
        border_offset(border_pixels)
        self.check_overlap = check_overlap
        self.check_min_area = check_min_area
        self.check_degenerate = check_degenerate
        self.overlap_criterion = overlap_criterion
        self.overlap_bounds = overlap_bounds
        self.min_area = min_area
        self.labels_format = resolve_labels_format(labels_format)
        self.border_pixels = border_pixels

    def __call__(self, labels, image_height: int | None = None, image_width: int | None = None):
        labels = np.array(labels, copy=True)
        xmin, ymin, xmax, ymax = corner_indices(self.labels_format)
        keep = np.ones(labels.shape[0], dtype=bool)

        if self.check_degenerate:
            keep &= (labels[:, xmax] > labels[:, xmin]) & (labels[:, ymax] > labels[:, ymin])
        if self.check_min_area:
            areas = (labels[:, xmax] - labels[:, xmin]) * (labels[:, ymax] - labels[:, ymin])
            keep &= areas >= self.min_area
        if self.check_overlap:
            if image_height is None or image_width is None:
                raise ValueError(
                    "BoxFilter with check_overlap=True needs image_height and image_width, "
                    f"got {image_height!r} and {image_width!r}"
                )
            keep &= self._overlap_ok(labels, image_height, image_width)
        return labels[keep]

    def _bounds(self) -> tuple[float, float]:
        if isinstance(self.overlap_bounds, BoundGenerator):
            lower, upper = self.overlap_bounds()
        else:
            lower, upper = self.overlap_bounds
        return lower, upper

    def _overlap_ok(self, labels: np.ndarray, height: int, width: int) -> np.ndarray:
        xmin, ymin, xmax, ymax = corner_indices(self.labels_format)
        if self.overlap_criterion == "center_point":
            cx = (labels[:, xmin] + labels[:, xmax]) / 2
            cy = (labels[:, ymin] + labels[:, ymax]) / 2
            return (cx >= 0) & (cx <= width - 1) & (cy >= 0) & (cy <= height - 1)

        lower, upper = self._bounds()
        boxes = labels[:, [xmin, ymin, xmax, ymax]]
        if self.overlap_criterion == "iou":
            image_box = np.array([0.0, 0.0, width, height])
            overlaps = iou(image_box, boxes, coords="corners", border_pixels=self.border_pixels)[0]
            return (overlaps > lower) & (overlaps <= upper)

        d = border_offset(self.border_pixels)
        box_areas = (boxes[:, 2] - boxes[:, 0] + d) * (boxes[:, 3] - boxes[:, 1] + d)
        clipped = np.empty_like(boxes)
        clipped[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width - 1)
        clipped[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height - 1)
        inside = (clipped[:, 2] - clipped[:, 0] + d) * (clipped[:, 3] - clipped[:, 1] + d)
        # With lower == 0, ">" keeps boxes of zero area out; otherwise ">=" so lower == 1 can pass.
        above = inside > 0 if lower == 0.0 else inside >= lower * box_areas
        return above & (inside <= upper * box_areas)


class ImageValidator:
    """Says whether enough boxes overlap an image well enough.

    Args:
        overlap_criterion: ``'center_point'``, ``'iou'`` or ``'area'``.
        bounds: ``(lower, upper)`` or a `BoundGenerator`.
        n_boxes_min: an int > 0 (at least that many boxes must pass) or ``'all'``.
        labels_format: column indices of the label rows.
        border_pixels: ``'half'``, ``'include'`` or ``'exclude'``.

    Call:
        ``validator(labels, image_height, image_width)`` -> bool. ``labels`` are ``(k, 5+)`` rows
        already in the coordinates of the image (or patch) being validated.
    """

    def __init__(
        self,
        overlap_criterion: str = "center_point",
        bounds=(0.3, 1.0),
        n_boxes_min: int | str = 1,
        labels_format: Mapping[str, int] | None = None,
        border_pixels: str = "half",
    ):
        valid_int = isinstance(n_boxes_min, (int, np.integer)) and not isinstance(n_boxes_min, bool)
        if not ((valid_int and n_boxes_min > 0) or n_boxes_min == "all"):
            raise ValueError(f"n_boxes_min must be an int > 0 or 'all', got {n_boxes_min!r}")
        self.overlap_criterion = overlap_criterion
        self.bounds = bounds
        self.n_boxes_min = n_boxes_min
        self.labels_format = resolve_labels_format(labels_format)
        self.border_pixels = border_pixels
        self.box_filter = BoxFilter(
            check_overlap=True,
            check_min_area=False,
            check_degenerate=False,
            overlap_criterion=overlap_criterion,
            overlap_bounds=bounds,
            labels_format=self.labels_format,
            border_pixels=border_pixels,
        )

    def __call__(self, labels, image_height: int, image_width: int) -> bool:
        # The attributes may change after construction (RandomPatchInf sets the bounds).
        self.box_filter.overlap_criterion = self.overlap_criterion
        self.box_filter.overlap_bounds = self.bounds
        self.box_filter.labels_format = self.labels_format
        self.box_filter.border_pixels = self.border_pixels
        n_valid = len(self.box_filter(labels, image_height=image_height, image_width=image_width))
        if self.n_boxes_min == "all":
            return n_valid == len(labels)
        return n_valid >= self.n_boxes_min


def check_image_validator(image_validator) -> None:
    """Raises a ValueError unless ``image_validator`` is an `ImageValidator` or None."""
    if not (image_validator is None or isinstance(image_validator, ImageValidator)):
        raise ValueError(
            f"image_validator must be an ImageValidator or None, got {image_validator!r}"
        )


def check_box_filter(box_filter) -> None:
    """Raises a ValueError unless ``box_filter`` is a `BoxFilter` or None."""
    if not (box_filter is None or isinstance(box_filter, BoxFilter)):
        raise ValueError(f"box_filter must be a BoxFilter or None, got {box_filter!r}")


def first_accepted(n_trials_max: int, draw: Callable[[], T], accept: Callable[[T], bool]):
    """The retry loop of the random ops: up to ``max(1, n_trials_max)`` draws, the first one
    that ``accept`` passes, or None when every draw is rejected.

    ``draw()`` takes the op's random numbers, so a seeded op draws the same numbers in the same
    order whether a draw is accepted or not.
    """
    for _ in range(max(1, n_trials_max)):
        candidate = draw()
        if accept(candidate):
            return candidate
    return None


def validates(image_validator, labels, boxes_after: Callable[[], np.ndarray], height, width):
    """Whether ``image_validator`` accepts the boxes a transformation would give (always, when
    there is no validator or no labels); ``boxes_after()`` computes them only when needed."""
    if labels is None or image_validator is None:
        return True
    return bool(image_validator(boxes_after(), height, width))


def box_filter_and_validator(
    overlap_criterion: str,
    bounds_box_filter: Sequence[float],
    bounds_validator: Sequence[float],
    n_boxes_min: int | str,
    labels_format: Mapping[str, int] | None = None,
) -> tuple[BoxFilter, ImageValidator]:
    """The box checks of the constant- and variable-input-size chains: a `BoxFilter` (overlap
    within ``bounds_box_filter``, an area of at least 16 px, not degenerate) and an
    `ImageValidator` (``n_boxes_min`` boxes with an overlap within ``bounds_validator``)."""
    box_filter = BoxFilter(
        check_overlap=True,
        check_min_area=True,
        check_degenerate=True,
        overlap_criterion=overlap_criterion,
        overlap_bounds=bounds_box_filter,
        min_area=16,
        labels_format=labels_format,
    )
    image_validator = ImageValidator(
        overlap_criterion=overlap_criterion,
        bounds=bounds_validator,
        n_boxes_min=n_boxes_min,
        labels_format=labels_format,
    )
    return box_filter, image_validator
