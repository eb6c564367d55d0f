"""Geometric image transforms that move the boxes with the image.

Each op is called as ``op(image, labels=None)`` and returns ``image`` (when ``labels`` is ``None``)
or ``(image, labels)``; see `object_detection_2d_misc_utils` for the conventions. `Resize`,
`ResizeRandomInterp`, `Flip` and `RandomFlip` also accept ``return_inverter=True``. Random ops take
``rng``: ``None`` (fresh entropy), an int seed or a ``numpy.random.Generator`` (shared, so a chain
can drive all its ops from one stream).

Coordinates are continuous pixel-edge coordinates: an image of width ``W`` spans ``[0, W]``. Ops
that clip (``clip_boxes=True``) clip to ``[0, W - 1] x [0, H - 1]`` as the original did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import cv2
import numpy as np

from data_generator.object_detection_2d_image_boxes_validation_utils import (
    BoxFilter,
    ImageValidator,
    check_box_filter,
    check_image_validator,
    first_accepted,
    validates,
)
from data_generator.object_detection_2d_misc_utils import (
    as_labels,
    check_prob,
    clip_boxes,
    corner_indices,
    draws,
    identity_inverter,
    pack_output,
    resolve_labels_format,
    shift_boxes,
)

DEFAULT_INTERPOLATION_MODES = (
    cv2.INTER_NEAREST,
    cv2.INTER_LINEAR,
    cv2.INTER_CUBIC,
    cv2.INTER_AREA,
    cv2.INTER_LANCZOS4,
)


def _apply_box_filter(box_filter, labels, height, width, labels_format):
    if box_filter is None:
        return labels
    box_filter.labels_format = labels_format
    return box_filter(labels, image_height=height, image_width=width)


def _keep_channel_axis(result: np.ndarray, source: np.ndarray) -> np.ndarray:
    """OpenCV drops a trailing channel axis of length 1; put it back."""
    if source.ndim == 3 and result.ndim == 2:
        return result[:, :, None]
    return result


class Resize:
    """Resizes the image to a fixed size and scales the boxes with it.

    Box coordinates are scaled and rounded to integers with ``np.round`` (half to even), as in the
    original.

    Args:
        height: output height in pixels.
        width: output width in pixels.
        interpolation_mode: an OpenCV interpolation flag (``cv2.INTER_LINEAR`` by default).
        box_filter: optional `BoxFilter` applied to the resized boxes.
        labels_format: column indices of the label rows.

    Call:
        ``op(image, labels=None, return_inverter=False)``; image ``(H, W, C)`` -> ``(height,
        width, C)``. The inverter scales predictions ``[class_id, conf, xmin, ymin, xmax, ymax]``
        back to ``(H, W)`` and rounds them to integers.
    """

    def __init__(
        self,
        height: int,
        width: int,
        interpolation_mode: int = cv2.INTER_LINEAR,
        box_filter: BoxFilter | None = None,
        labels_format: Mapping[str, int] | None = None,
    ):
        if height <= 0 or width <= 0:
            raise ValueError(f"height and width must be > 0, got {height!r} and {width!r}")
        check_box_filter(box_filter)
        self.out_height = int(height)
        self.out_width = int(width)
        self.interpolation_mode = interpolation_mode
        self.box_filter = box_filter
        self.labels_format = resolve_labels_format(labels_format)

    def __call__(self, image, labels=None, return_inverter: bool = False):
        img_height, img_width = image.shape[:2]
        xmin, ymin, xmax, ymax = corner_indices(self.labels_format)
        resized = cv2.resize(
            image,
            dsize=(self.out_width, self.out_height),
            interpolation=int(self.interpolation_mode),
        )
        resized = _keep_channel_axis(resized, image)

        inverter = None
        if return_inverter:
            y_back, x_back = img_height / self.out_height, img_width / self.out_width

            def inverter(predictions):
                predictions = np.array(predictions, copy=True)
                ys, xs = [ymin + 1, ymax + 1], [xmin + 1, xmax + 1]
                predictions[:, ys] = np.round(predictions[:, ys] * y_back)
                predictions[:, xs] = np.round(predictions[:, xs] * x_back)
                return predictions

        labels = as_labels(labels)
        if labels is not None:
            ys, xs = [ymin, ymax], [xmin, xmax]
            labels[:, ys] = np.round(labels[:, ys] * (self.out_height / img_height))
            labels[:, xs] = np.round(labels[:, xs] * (self.out_width / img_width))
            labels = _apply_box_filter(
                self.box_filter, labels, self.out_height, self.out_width, self.labels_format
            )
        return pack_output(resized, labels, inverter, return_inverter)


class ResizeRandomInterp:
    """`Resize` with an interpolation mode drawn at random for every call.

    Args:
        height, width, box_filter, labels_format: as for `Resize`.
        interpolation_modes: the OpenCV flags to draw from (uniformly).
        rng: ``None``, an int seed or a ``numpy.random.Generator``.
    """

    def __init__(
        self,
        height: int,
        width: int,
        interpolation_modes: Sequence[int] = DEFAULT_INTERPOLATION_MODES,
        box_filter: BoxFilter | None = None,
        labels_format: Mapping[str, int] | None = None,
        rng=None,
    ):
        if not isinstance(interpolation_modes, (list, tuple)) or not interpolation_modes:
            raise ValueError(
                "interpolation_modes must be a non-empty list or tuple, "
                f"got {interpolation_modes!r}"
            )
        self.height = height
        self.width = width
        self.interpolation_modes = list(interpolation_modes)
        self.box_filter = box_filter
        self.labels_format = resolve_labels_format(labels_format)
        self.rng = np.random.default_rng(rng)
        self.resize = Resize(height, width, box_filter=box_filter, labels_format=self.labels_format)

    def __call__(self, image, labels=None, return_inverter: bool = False):
        i = self.rng.integers(len(self.interpolation_modes))
        self.resize.interpolation_mode = self.interpolation_modes[i]
        self.resize.labels_format = self.labels_format
        return self.resize(image, labels, return_inverter)


class Flip:
    """Flips the image horizontally or vertically.

    Boxes map as ``x' = W - x`` (horizontal) or ``y' = H - y`` (vertical), min and max swapped.

    Args:
        dim: ``'horizontal'`` or ``'vertical'``.
        labels_format: column indices of the label rows.

    Call:
        ``op(image, labels=None, return_inverter=False)``. The inverter (new here; the original
        had none) flips predictions back; flipping is its own inverse.
    """

    def __init__(self, dim: str = "horizontal", labels_format: Mapping[str, int] | None = None):
        if dim not in ("horizontal", "vertical"):
            raise ValueError(f"dim must be 'horizontal' or 'vertical', got {dim!r}")
        self.dim = dim
        self.labels_format = resolve_labels_format(labels_format)

    def _flip_boxes(self, boxes: np.ndarray, height: int, width: int, offset: int) -> np.ndarray:
        xmin, ymin, xmax, ymax = (i + offset for i in corner_indices(self.labels_format))
        if self.dim == "horizontal":
            boxes[:, [xmin, xmax]] = width - boxes[:, [xmax, xmin]]
        else:
            boxes[:, [ymin, ymax]] = height - boxes[:, [ymax, ymin]]
        return boxes

    def __call__(self, image, labels=None, return_inverter: bool = False):
        height, width = image.shape[:2]
        flipped = _keep_channel_axis(cv2.flip(image, 1 if self.dim == "horizontal" else 0), image)

        inverter = None
        if return_inverter:

            def inverter(predictions):
                predictions = np.array(predictions, copy=True)
                return self._flip_boxes(predictions, height, width, offset=1)

        labels = as_labels(labels)
        if labels is not None:
            labels = self._flip_boxes(labels, height, width, offset=0)
        return pack_output(flipped, labels, inverter, return_inverter)


class RandomFlip:
    """`Flip` with probability ``prob``.

    Args:
        dim: ``'horizontal'`` or ``'vertical'``.
        prob: probability of flipping.
        labels_format: column indices of the label rows.
        rng: ``None``, an int seed or a ``numpy.random.Generator``.
    """

    def __init__(
        self,
        dim: str = "horizontal",
        prob: float = 0.5,
        labels_format: Mapping[str, int] | None = None,
        rng=None,
    ):
        self.dim = dim
        self.prob = check_prob(prob)
        self.labels_format = resolve_labels_format(labels_format)
        self.rng = np.random.default_rng(rng)
        self.flip = Flip(dim=dim, labels_format=self.labels_format)

    def __call__(self, image, labels=None, return_inverter: bool = False):
        if draws(self.rng, self.prob):
            self.flip.labels_format = self.labels_format
            return self.flip(image, labels, return_inverter)
        return pack_output(image, as_labels(labels), identity_inverter, return_inverter)


def _clip_and_filter(op, labels, height, width):
    """The original's order: box filter on the unclipped boxes, then clipping."""
    labels = _apply_box_filter(op.box_filter, labels, height, width, op.labels_format)
    if op.clip_boxes:
        labels = clip_boxes(labels, height, width, op.labels_format)
    return labels


class Translate:
    """Shifts the image by ``(dy * H, dx * W)`` pixels (rounded), filling with ``background``.

    Args:
        dy: vertical shift relative to the image height (positive: down).
        dx: horizontal shift relative to the image width (positive: right).
        clip_boxes: clip the shifted boxes to the image.
        box_filter: optional `BoxFilter`, applied before clipping.
        background: fill colour of the uncovered border.
        labels_format: column indices of the label rows.
    """

    def __init__(
        self,
        dy: float,
        dx: float,
        clip_boxes: bool = True,
        box_filter: BoxFilter | None = None,
        background: Sequence[float] = (0, 0, 0),
        labels_format: Mapping[str, int] | None = None,
    ):
        check_box_filter(box_filter)
        self.dy_rel = dy
        self.dx_rel = dx
        self.clip_boxes = clip_boxes
        self.box_filter = box_filter
        self.background = background
        self.labels_format = resolve_labels_format(labels_format)

    def __call__(self, image, labels=None):
        height, width = image.shape[:2]
        dy_abs = int(round(height * self.dy_rel))
        dx_abs = int(round(width * self.dx_rel))
        matrix = np.float32([[1, 0, dx_abs], [0, 1, dy_abs]])
        shifted = cv2.warpAffine(
            image,
            M=matrix,
            dsize=(width, height),
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=tuple(float(v) for v in self.background),
        )
        shifted = _keep_channel_axis(shifted, image)
        if labels is None:
            return shifted
        labels = shift_boxes(labels, dy_abs, dx_abs, self.labels_format)
        return shifted, _clip_and_filter(self, labels, height, width)


class _RandomRetryOp:
    """The part `RandomTranslate` and `RandomScale` share: with probability ``prob``, up to
    ``n_trials_max`` draws of the op's parameters; the first draw whose boxes
    ``image_validator`` accepts is applied (the first draw, without a validator or labels);
    when none is accepted, the input comes back unchanged."""

    def __init__(
        self,
        prob,
        clip_boxes,
        box_filter,
        image_validator,
        n_trials_max,
        background,
        labels_format,
        rng,
    ):
        check_image_validator(image_validator)
        self.prob = check_prob(prob)
        self.clip_boxes = clip_boxes
        self.box_filter = box_filter
        self.image_validator = image_validator
        self.n_trials_max = n_trials_max
        self.background = background
        self.labels_format = resolve_labels_format(labels_format)
        self.rng = np.random.default_rng(rng)

    def _apply_first_accepted(self, image, labels, op, draw, boxes_after, set_params):
        """``op(image, labels)`` with the first accepted ``draw()`` set by ``set_params``;
        ``boxes_after(params, height, width)`` gives the boxes the validator judges."""
        if not draws(self.rng, self.prob):
            return pack_output(image, as_labels(labels))
        height, width = image.shape[:2]
        op.labels_format = self.labels_format
        if self.image_validator is not None:
            self.image_validator.labels_format = self.labels_format

        def accept(params):
            after = partial(boxes_after, params, height, width)
            return validates(self.image_validator, labels, after, height, width)

        params = first_accepted(self.n_trials_max, draw, accept)
        if params is None:
            return pack_output(image, as_labels(labels))
        set_params(params)
        return op(image, labels)


class RandomTranslate(_RandomRetryOp):
    """`Translate` with probability ``prob`` by random amounts in random directions.

    Up to ``n_trials_max`` shifts are drawn; the first one that ``image_validator`` accepts is
    applied. If none is accepted, the input comes back unchanged.

    Args:
        dy_minmax: range of ``|dy|`` (relative to the height).
        dx_minmax: range of ``|dx|`` (relative to the width).
        prob: probability of translating at all.
        clip_boxes, box_filter, background, labels_format: as for `Translate`.
        image_validator: optional `ImageValidator` deciding whether a shift is acceptable.
        n_trials_max: number of shifts to try.
        rng: ``None``, an int seed or a ``numpy.random.Generator``.
    """

    def __init__(
        self,
        dy_minmax: Sequence[float] = (0.03, 0.3),
        dx_minmax: Sequence[float] = (0.03, 0.3),
        prob: float = 0.5,
        clip_boxes: bool = True,
        box_filter: BoxFilter | None = None,
        image_validator: ImageValidator | None = None,
        n_trials_max: int = 3,
        background: Sequence[float] = (0, 0, 0),
        labels_format: Mapping[str, int] | None = None,
        rng=None,
    ):
        for name, pair in (("dy_minmax", dy_minmax), ("dx_minmax", dx_minmax)):
            if pair[0] > pair[1]:
                raise ValueError(f"{name} needs min <= max, got {pair!r}")
            if pair[0] < 0:
                raise ValueError(f"{name} must be >= 0 (the direction is drawn), got {pair!r}")
        super().__init__(
            prob,
            clip_boxes,
            box_filter,
            image_validator,
            n_trials_max,
            background,
            labels_format,
            rng,
        )
        self.dy_minmax = dy_minmax
        self.dx_minmax = dx_minmax
        self.translate = Translate(
            dy=0,
            dx=0,
            clip_boxes=clip_boxes,
            box_filter=box_filter,
            background=background,
            labels_format=self.labels_format,
        )

    def _draw_shift(self) -> tuple[float, float]:
        """``(dy, dx)`` relative to the image size, each with a random sign (the original's
        draw order: both sizes, then both signs)."""
        dy_abs = self.rng.uniform(*self.dy_minmax)
        dx_abs = self.rng.uniform(*self.dx_minmax)
        dy = dy_abs if self.rng.integers(2) else -dy_abs
        dx = dx_abs if self.rng.integers(2) else -dx_abs
        return dy, dx

    def _shifted_boxes(self, labels, shift, height, width):
        dy, dx = shift
        return shift_boxes(
            labels, int(round(height * dy)), int(round(width * dx)), self.labels_format
        )

    def _set_shift(self, shift) -> None:
        self.translate.dy_rel, self.translate.dx_rel = shift

    def __call__(self, image, labels=None):
        return self._apply_first_accepted(
            image,
            labels,
            self.translate,
            self._draw_shift,
            lambda shift, height, width: self._shifted_boxes(labels, shift, height, width),
            self._set_shift,
        )


def _scale_matrix(height: int, width: int, factor: float) -> np.ndarray:
    return cv2.getRotationMatrix2D(center=(width / 2, height / 2), angle=0, scale=factor)


def _scaled_labels(labels, matrix: np.ndarray, labels_format) -> np.ndarray:
    """Maps the two corners of every box through the affine ``matrix`` and rounds them."""
    xmin, ymin, xmax, ymax = corner_indices(labels_format)
    labels = np.array(labels, copy=True)
    ones = np.ones(len(labels))
    top_left = matrix @ np.stack([labels[:, xmin], labels[:, ymin], ones])  # (2, k)
    bottom_right = matrix @ np.stack([labels[:, xmax], labels[:, ymax], ones])
    labels[:, [xmin, ymin]] = np.round(top_left.T)
    labels[:, [xmax, ymax]] = np.round(bottom_right.T)
    return labels


class Scale:
    """Zooms the image about its centre by ``factor`` (bilinear), keeping its size.

    Box corners map as ``x' = round(f * x + (1 - f) * W / 2)`` (likewise ``y``).

    Args:
        factor: zoom factor, > 0 (> 1 zooms in, < 1 zooms out and fills with ``background``).
        clip_boxes, box_filter, background, labels_format: as for `Translate`.
    """

    def __init__(
        self,
        factor: float,
        clip_boxes: bool = True,
        box_filter: BoxFilter | None = None,
        background: Sequence[float] = (0, 0, 0),
        labels_format: Mapping[str, int] | None = None,
    ):
        if factor <= 0:
            raise ValueError(f"factor must be > 0, got {factor!r}")
        check_box_filter(box_filter)
        self.factor = factor
        self.clip_boxes = clip_boxes
        self.box_filter = box_filter
        self.background = background
        self.labels_format = resolve_labels_format(labels_format)

    def __call__(self, image, labels=None):
        height, width = image.shape[:2]
        matrix = _scale_matrix(height, width, self.factor)
        scaled = cv2.warpAffine(
            image,
            M=matrix,
            dsize=(width, height),
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=tuple(float(v) for v in self.background),
        )
        scaled = _keep_channel_axis(scaled, image)
        if labels is None:
            return scaled
        labels = _scaled_labels(labels, matrix, self.labels_format)
        return scaled, _clip_and_filter(self, labels, height, width)


class RandomScale(_RandomRetryOp):
    """`Scale` with probability ``prob`` by a factor drawn from ``[min_factor, max_factor]``.

    Up to ``n_trials_max`` factors are drawn; the first one that ``image_validator`` accepts is
    applied. If none is accepted, the input comes back unchanged.

    Args:
        min_factor, max_factor: range of the zoom factor (> 0).
        prob: probability of scaling at all.
        clip_boxes, box_filter, background, labels_format: as for `Scale`.
        image_validator: optional `ImageValidator`.
        n_trials_max: number of factors to try.
        rng: ``None``, an int seed or a ``numpy.random.Generator``.
    """

    def __init__(
        self,
        min_factor: float = 0.5,
        max_factor: float = 1.5,
        prob: float = 0.5,
        clip_boxes: bool = True,
        box_filter: BoxFilter | None = None,
        image_validator: ImageValidator | None = None,
        n_trials_max: int = 3,
        background: Sequence[float] = (0, 0, 0),
        labels_format: Mapping[str, int] | None = None,
        rng=None,
    ):
        if not 0 < min_factor <= max_factor:
            raise ValueError(
                f"needs 0 < min_factor <= max_factor, got min_factor={min_factor!r}, "
                f"max_factor={max_factor!r}"
            )
        super().__init__(
            prob,
            clip_boxes,
            box_filter,
            image_validator,
            n_trials_max,
            background,
            labels_format,
            rng,
        )
        self.min_factor = min_factor
        self.max_factor = max_factor
        self.scale = Scale(
            factor=1.0,
            clip_boxes=clip_boxes,
            box_filter=box_filter,
            background=background,
            labels_format=self.labels_format,
        )

    def _scaled_boxes(self, labels, factor, height, width):
        return _scaled_labels(labels, _scale_matrix(height, width, factor), self.labels_format)

    def _set_factor(self, factor) -> None:
        self.scale.factor = factor

    def __call__(self, image, labels=None):
        return self._apply_first_accepted(
            image,
            labels,
            self.scale,
            lambda: self.rng.uniform(self.min_factor, self.max_factor),
            lambda factor, height, width: self._scaled_boxes(labels, factor, height, width),
            self._set_factor,
        )


def _rotate_image_as_original(image: np.ndarray, angle: int) -> np.ndarray:
    """The original's ``cv2.warpAffine`` rotation by 90/180/270 degrees, computed by indexing.

    Its matrix maps a source point ``(x, y)`` to (90) ``(y, W - x)``, (180) ``(W - x, H - y)``,
    (270) ``(H - y, x)``; a destination pixel whose source falls outside the image is 0.
    """
    # np.rot90 sends pixel (x, y) to (y, W - 1 - x) for 90 degrees (and likewise for the others):
    # one pixel short of the matrix on each axis that is reversed, hence the shift.
    turned = np.rot90(image, k=angle // 90)
    out = np.zeros_like(turned)
    if angle == 90:
        out[1:] = turned[:-1]
    elif angle == 180:
        out[1:, 1:] = turned[:-1, :-1]
    else:
        out[:, 1:] = turned[:, :-1]
    return out


class Rotate:
    """Rotates the image counter-clockwise by 90, 180 or 270 degrees.

    Box corners map as (90) ``x' = y, y' = W - x``; (180) ``x' = W - x, y' = H - y``; (270)
    ``x' = H - y, y' = x``, with min and max re-ordered. For 90 and 270 the output is ``W x H``.

    The image is transformed exactly as the original's ``cv2.warpAffine`` with its rotation matrix
    about ``(W/2, H/2)`` (the same mapping as the box formulas, in pixel indices): the destination
    pixel ``(x', y')`` takes the source pixel the formulas send there, so 90 is ``np.rot90``
    moved down one row, 180 moved down and right, 270 moved right, with a zero first row and/or
    column. A block of pixels and its box therefore move together (pixel columns 30..49 of a
    200-wide image end at 151..170 after 180 degrees, as its box does). Computed by indexing, so it
    is exact for every dtype and number of channels and does not depend on OpenCV's rounding.

    Args:
        angle: 90, 180 or 270.
        labels_format: column indices of the label rows.
    """

    def __init__(self, angle: int, labels_format: Mapping[str, int] | None = None):
        if angle not in (90, 180, 270):
            raise ValueError(f"angle must be 90, 180 or 270, got {angle!r}")
        self.angle = angle
        self.labels_format = resolve_labels_format(labels_format)

    def __call__(self, image, labels=None):
        height, width = image.shape[:2]
        rotated = _rotate_image_as_original(image, self.angle)
        if labels is None:
            return rotated
        xmin, ymin, xmax, ymax = corner_indices(self.labels_format)
        labels = as_labels(labels)
        x0, y0 = labels[:, xmin].copy(), labels[:, ymin].copy()
        x1, y1 = labels[:, xmax].copy(), labels[:, ymax].copy()
        if self.angle == 90:
            new = (y0, width - x1, y1, width - x0)
        elif self.angle == 180:
            new = (width - x1, height - y1, width - x0, height - y0)
        else:
            new = (height - y1, x0, height - y0, x1)
        for column, values in zip((xmin, ymin, xmax, ymax), new):
            labels[:, column] = values
        return rotated, labels


class RandomRotate:
    """`Rotate` with probability ``prob`` by an angle drawn from ``angles``.

    Args:
        angles: a subset of ``(90, 180, 270)``.
        prob: probability of rotating at all.
        labels_format: column indices of the label rows.
        rng: ``None``, an int seed or a ``numpy.random.Generator``.
    """

    def __init__(
        self,
        angles: Sequence[int] = (90, 180, 270),
        prob: float = 0.5,
        labels_format: Mapping[str, int] | None = None,
        rng=None,
    ):
        for angle in angles:
            if angle not in (90, 180, 270):
                raise ValueError(f"angles may only hold 90, 180 and 270, got {list(angles)!r}")
        self.angles = list(angles)
        self.prob = check_prob(prob)
        self.labels_format = resolve_labels_format(labels_format)
        self.rng = np.random.default_rng(rng)
        self.rotate = Rotate(angle=90, labels_format=self.labels_format)

    def __call__(self, image, labels=None):
        if not draws(self.rng, self.prob):
            return pack_output(image, as_labels(labels))
        self.rotate.angle = self.angles[self.rng.integers(len(self.angles))]
        self.rotate.labels_format = self.labels_format
        return self.rotate(image, labels)
