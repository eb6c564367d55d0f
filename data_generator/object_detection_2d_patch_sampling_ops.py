"""Cropping and padding: fixed patches (`CropPad`, `Crop`, `Pad`) and random ones (`RandomPatch`,
`RandomPatchInf`, `RandomMaxCropFixedAR`, `RandomPadFixedAR`), with `PatchCoordinateGenerator`
drawing the patch geometry.

A patch is ``(patch_ymin, patch_xmin, patch_height, patch_width)`` in the coordinates of the input
image; negative ``patch_ymin`` / ``patch_xmin`` or a patch reaching past the image pad with
``background``. Boxes are shifted into the patch's coordinates; with ``clip_boxes`` they are clipped
to ``[0, patch_width - 1] x [0, patch_height - 1]``; boxes left degenerate by clipping stay unless
a ``box_filter`` removes them (original behaviour).

All ops here accept ``return_inverter=True``; the inverter shifts predictions ``[class_id, conf,
xmin, ymin, xmax, ymax]`` back by the patch origin. Random ops take ``rng``: ``None``, an int seed
or a ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from data_generator.object_detection_2d_image_boxes_validation_utils import (
    BoundGenerator,
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
    draws,
    identity_inverter,
    pack_output,
    resolve_labels_format,
    shift_boxes,
)


class PatchCoordinateGenerator:
    """Draws patch coordinates ``(patch_ymin, patch_xmin, patch_height, patch_width)``.

    Two of height, width and aspect ratio are drawn (or fixed), the third follows:

    - ``must_match='h_w'``: height and width are each ``uniform(min_scale, max_scale)`` times the
      image's (one shared factor with ``scale_uniformly=True``);
    - ``'h_ar'``: height as above, aspect ratio ``w / h`` from ``[min_aspect_ratio,
      max_aspect_ratio]``, ``width = int(height * ar)``;
    - ``'w_ar'``: width as above, ``height = int(width / ar)``.

    A patch smaller than the image is placed at a uniformly drawn position inside it; a larger one
    at a uniformly drawn position that contains the image along that axis.

    Args:
        img_height, img_width: the image size (the random patch ops set these at every call).
        must_match: ``'h_w'``, ``'h_ar'`` or ``'w_ar'``.
        min_scale, max_scale: range of the patch size relative to the image (``min < max``).
        scale_uniformly: ``'h_w'`` only: one factor for both sides.
        min_aspect_ratio, max_aspect_ratio: range of ``w / h`` for ``'h_ar'`` and ``'w_ar'``.
        patch_ymin, patch_xmin, patch_height, patch_width, patch_aspect_ratio: fixed values that
            replace the random ones (``None``: drawn).
        rng: ``None``, an int seed or a ``numpy.random.Generator``.
    """

    def __init__(
        self,
        img_height: int | None = None,
        img_width: int | None = None,
        must_match: str = "h_w",
        min_scale: float = 0.3,
        max_scale: float = 1.0,
        scale_uniformly: bool = False,
        min_aspect_ratio: float = 0.5,
        max_aspect_ratio: float = 2.0,
        patch_ymin: int | None = None,
        patch_xmin: int | None = None,
        patch_height: int | None = None,
        patch_width: int | None = None,
        patch_aspect_ratio: float | None = None,
        rng=None,
    ):
        if must_match not in ("h_w", "h_ar", "w_ar"):
            raise ValueError(f"must_match must be 'h_w', 'h_ar' or 'w_ar', got {must_match!r}")
        if min_scale >= max_scale:
            raise ValueError(
                f"needs min_scale < max_scale, got min_scale={min_scale!r}, max_scale={max_scale!r}"
            )
        if min_aspect_ratio >= max_aspect_ratio:
            raise ValueError(
                "needs min_aspect_ratio < max_aspect_ratio, got "
                f"min_aspect_ratio={min_aspect_ratio!r}, max_aspect_ratio={max_aspect_ratio!r}"
            )
        if scale_uniformly and not (patch_height is None and patch_width is None):
            raise ValueError(
                "scale_uniformly=True needs patch_height and patch_width to be None, got "
                f"patch_height={patch_height!r}, patch_width={patch_width!r}"
            )
        self.img_height = img_height
        self.img_width = img_width
        self.must_match = must_match
        self.min_scale = min_scale
        self.max_scale = max_scale
        self.scale_uniformly = scale_uniformly
        self.min_aspect_ratio = min_aspect_ratio
        self.max_aspect_ratio = max_aspect_ratio
        self.patch_ymin = patch_ymin
        self.patch_xmin = patch_xmin
        self.patch_height = patch_height
        self.patch_width = patch_width
        self.patch_aspect_ratio = patch_aspect_ratio
        self.rng = np.random.default_rng(rng)

    def _side(self, fixed: int | None, image_side: int) -> int:
        if fixed is not None:
            return fixed
        return int(self.rng.uniform(self.min_scale, self.max_scale) * image_side)

    def _aspect_ratio(self) -> float:
        if self.patch_aspect_ratio is not None:
            return self.patch_aspect_ratio
        return self.rng.uniform(self.min_aspect_ratio, self.max_aspect_ratio)

    def _origin(self, fixed: int | None, image_side: int, patch_side: int) -> int:
        if fixed is not None:
            return fixed
        room = image_side - patch_side
        # room >= 0: room + 1 positions inside the image; room < 0: the image sits inside the patch.
        if room >= 0:
            return int(self.rng.integers(0, room + 1))
        return int(self.rng.integers(room, 1))

    def __call__(self) -> tuple[int, int, int, int]:
        if self.img_height is None or self.img_width is None:
            raise ValueError(
                "PatchCoordinateGenerator needs img_height and img_width, got "
                f"{self.img_height!r} and {self.img_width!r}"
            )
        if self.must_match == "h_w":
            if self.scale_uniformly:
                factor = self.rng.uniform(self.min_scale, self.max_scale)
                patch_height = int(factor * self.img_height)
                patch_width = int(factor * self.img_width)
            else:
                patch_height = self._side(self.patch_height, self.img_height)
                patch_width = self._side(self.patch_width, self.img_width)
        elif self.must_match == "h_ar":
            patch_height = self._side(self.patch_height, self.img_height)
            patch_width = int(patch_height * self._aspect_ratio())
        else:
            patch_width = self._side(self.patch_width, self.img_width)
            patch_height = int(patch_width / self._aspect_ratio())
        # int() truncation can give 0 for tiny images or extreme ratios; a patch has >= 1 pixel.
        patch_height, patch_width = max(1, patch_height), max(1, patch_width)
        patch_ymin = self._origin(self.patch_ymin, self.img_height, patch_height)
        patch_xmin = self._origin(self.patch_xmin, self.img_width, patch_width)
        return patch_ymin, patch_xmin, patch_height, patch_width


class CropPad:
    """Cuts a patch out of the image, padding with ``background`` where it reaches outside.

    Args:
        patch_ymin, patch_xmin: top-left corner of the patch in image coordinates (may be < 0).
        patch_height, patch_width: size of the output.
        clip_boxes: clip the boxes to the patch.
        box_filter: optional `BoxFilter`, applied before clipping.
        background: fill colour (one value per channel).
        labels_format: column indices of the label rows.

    Call:
        ``op(image, labels=None, return_inverter=False)``; the output has the input's dtype and
        shape ``(patch_height, patch_width[, C])``. The inverter adds the patch origin back (no
        rounding).

    Raises:
        ValueError: if the patch does not overlap the image.
    """

    def __init__(
        self,
        patch_ymin: int,
        patch_xmin: int,
        patch_height: int,
        patch_width: int,
        clip_boxes: bool = True,
        box_filter: BoxFilter | None = None,
        background: Sequence[float] = (0, 0, 0),
        labels_format: Mapping[str, int] | None = None,
    ):
        check_box_filter(box_filter)
        self.patch_ymin = patch_ymin
        self.patch_xmin = patch_xmin
        self.patch_height = patch_height
        self.patch_width = patch_width
        self.clip_boxes = clip_boxes
        self.box_filter = box_filter
        self.background = background
        self.labels_format = resolve_labels_format(labels_format)

    def _fill_value(self, channels: int) -> tuple[float, ...]:
        background = np.asarray(self.background, dtype=np.float64).ravel()
        if background.size != channels:
            background = np.full(channels, background[0])
        return tuple(background.tolist())

    def _place(self, part: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        """``part`` with ``background`` margins of the given widths around it."""
        channels = 1 if part.ndim == 2 else part.shape[2]
        value = self._fill_value(channels)
        if channels <= 4:
            # OpenCV writes only the margins (a numpy fill of the whole canvas was the hot spot
            # of the 4x expansion in the SSD chain).
            border_value = value + (0.0,) * (4 - channels)
            placed = cv2.copyMakeBorder(
                part, top, bottom, left, right, cv2.BORDER_CONSTANT, value=border_value
            )
            return placed[:, :, None] if part.ndim == 3 and placed.ndim == 2 else placed
        canvas = np.empty((top + part.shape[0] + bottom, left + part.shape[1] + right, channels))
        canvas = canvas.astype(part.dtype)
        canvas[:] = value
        canvas[top : top + part.shape[0], left : left + part.shape[1]] = part
        return canvas

    def __call__(self, image, labels=None, return_inverter: bool = False):
        img_height, img_width = image.shape[:2]
        ymin0, xmin0 = int(self.patch_ymin), int(self.patch_xmin)
        if self.patch_height <= 0 or self.patch_width <= 0:
            raise ValueError(
                f"patch_height and patch_width must be > 0, got {self.patch_height!r} and "
                f"{self.patch_width!r}"
            )
        # The part of the image that lands on the patch, in image coordinates.
        y0, y1 = max(ymin0, 0), min(ymin0 + self.patch_height, img_height)
        x0, x1 = max(xmin0, 0), min(xmin0 + self.patch_width, img_width)
        if y1 <= y0 or x1 <= x0:
            raise ValueError(
                f"the patch (ymin={ymin0}, xmin={xmin0}, height={self.patch_height}, "
                f"width={self.patch_width}) does not overlap the image of size "
                f"{img_height}x{img_width}"
            )
        canvas = self._place(
            np.ascontiguousarray(image[y0:y1, x0:x1]),
            top=y0 - ymin0,
            bottom=ymin0 + self.patch_height - y1,
            left=x0 - xmin0,
            right=xmin0 + self.patch_width - x1,
        )

        labels_format = self.labels_format
        inverter = None
        if return_inverter:

            def inverter(predictions):
                return shift_boxes(predictions, ymin0, xmin0, labels_format, offset=1)

        labels = as_labels(labels)
        if labels is not None:
            labels = shift_boxes(labels, -ymin0, -xmin0, self.labels_format)
            if self.box_filter is not None:
                self.box_filter.labels_format = self.labels_format
                labels = self.box_filter(
                    labels, image_height=self.patch_height, image_width=self.patch_width
                )
            if self.clip_boxes:
                labels = clip_boxes(labels, self.patch_height, self.patch_width, self.labels_format)
        return pack_output(canvas, labels, inverter, return_inverter)


def _check_margins(**margins: int) -> None:
    for name, value in margins.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")


class Crop:
    """Crops fixed margins off the image (a `CropPad` inside the image).

    Args:
        crop_top, crop_bottom, crop_left, crop_right: pixels to remove on each side (>= 0).
        clip_boxes, box_filter, labels_format: as for `CropPad`.
    """

    def __init__(
        self,
        crop_top: int,
        crop_bottom: int,
        crop_left: int,
        crop_right: int,
        clip_boxes: bool = True,
        box_filter: BoxFilter | None = None,
        labels_format: Mapping[str, int] | None = None,
    ):
        _check_margins(
            crop_top=crop_top, crop_bottom=crop_bottom, crop_left=crop_left, crop_right=crop_right
        )
        self.crop_top = crop_top
        self.crop_bottom = crop_bottom
        self.crop_left = crop_left
        self.crop_right = crop_right
        self.clip_boxes = clip_boxes
        self.box_filter = box_filter
        self.labels_format = resolve_labels_format(labels_format)

    def __call__(self, image, labels=None, return_inverter: bool = False):
        img_height, img_width = image.shape[:2]
        crop = CropPad(
            patch_ymin=self.crop_top,
            patch_xmin=self.crop_left,
            patch_height=img_height - self.crop_top - self.crop_bottom,
            patch_width=img_width - self.crop_left - self.crop_right,
            clip_boxes=self.clip_boxes,
            box_filter=self.box_filter,
            labels_format=self.labels_format,
        )
        return crop(image, labels, return_inverter)


class Pad:
    """Pads fixed margins around the image with ``background`` (boxes are only shifted).

    Args:
        pad_top, pad_bottom, pad_left, pad_right: pixels to add on each side (>= 0).
        background: fill colour.
        labels_format: column indices of the label rows.
    """

    def __init__(
        self,
        pad_top: int,
        pad_bottom: int,
        pad_left: int,
        pad_right: int,
        background: Sequence[float] = (0, 0, 0),
        labels_format: Mapping[str, int] | None = None,
    ):
        _check_margins(
            pad_top=pad_top, pad_bottom=pad_bottom, pad_left=pad_left, pad_right=pad_right
        )
        self.pad_top = pad_top
        self.pad_bottom = pad_bottom
        self.pad_left = pad_left
        self.pad_right = pad_right
        self.background = background
        self.labels_format = resolve_labels_format(labels_format)

    def __call__(self, image, labels=None, return_inverter: bool = False):
        img_height, img_width = image.shape[:2]
        pad = CropPad(
            patch_ymin=-self.pad_top,
            patch_xmin=-self.pad_left,
            patch_height=img_height + self.pad_top + self.pad_bottom,
            patch_width=img_width + self.pad_left + self.pad_right,
            clip_boxes=False,
            box_filter=None,
            background=self.background,
            labels_format=self.labels_format,
        )
        return pad(image, labels, return_inverter)


class _RandomPatchBase:
    """Shared set-up of `RandomPatch` and `RandomPatchInf`."""

    def __init__(
        self,
        patch_coord_generator,
        box_filter,
        image_validator,
        n_trials_max,
        clip_boxes,
        prob,
        background,
        labels_format,
        rng,
    ):
        if not isinstance(patch_coord_generator, PatchCoordinateGenerator):
            raise ValueError(
                "patch_coord_generator must be a PatchCoordinateGenerator, "
                f"got {patch_coord_generator!r}"
            )
        check_image_validator(image_validator)
        self.rng = np.random.default_rng(rng)
        self.patch_coord_generator = patch_coord_generator
        self.box_filter = box_filter
        self.image_validator = image_validator
        self.n_trials_max = n_trials_max
        self.clip_boxes = clip_boxes
        self.prob = check_prob(prob)
        self.background = background
        self.labels_format = resolve_labels_format(labels_format)
        self.sample_patch = CropPad(
            patch_ymin=0,
            patch_xmin=0,
            patch_height=1,
            patch_width=1,
            clip_boxes=clip_boxes,
            box_filter=box_filter,
            background=background,
            labels_format=self.labels_format,
        )

    def _prepare(self, image) -> None:
        """Hands the image size, the rng and the labels format down to the parts."""
        generator = self.patch_coord_generator
        generator.img_height, generator.img_width = image.shape[:2]
        generator.rng = self.rng
        if self.image_validator is not None:
            self.image_validator.labels_format = self.labels_format
        self.sample_patch.labels_format = self.labels_format
        self.sample_patch.background = self.background

    def _accepts(self, patch, labels, check_aspect_ratio: bool) -> bool:
        """Whether a drawn patch ``(ymin, xmin, height, width)`` may be used."""
        generator = self.patch_coord_generator
        patch_ymin, patch_xmin, patch_height, patch_width = patch
        if check_aspect_ratio and not (
            generator.min_aspect_ratio <= patch_width / patch_height <= generator.max_aspect_ratio
        ):
            return False

        def in_patch():
            return shift_boxes(labels, -patch_ymin, -patch_xmin, self.labels_format)

        return validates(self.image_validator, labels, in_patch, patch_height, patch_width)

    def _first_patch(self, image, labels, return_inverter, check_aspect_ratio=False):
        """Up to ``n_trials_max`` drawn patches; the first accepted one cropped/padded, or
        ``None`` when every patch is rejected."""
        patch = first_accepted(
            self.n_trials_max,
            self.patch_coord_generator,
            lambda patch: self._accepts(patch, labels, check_aspect_ratio),
        )
        if patch is None:
            return None
        sample = self.sample_patch
        sample.patch_ymin, sample.patch_xmin, sample.patch_height, sample.patch_width = patch
        return sample(image, labels, return_inverter)


class RandomPatch(_RandomPatchBase):
    """With probability ``prob``, crops/pads a random patch drawn by ``patch_coord_generator``.

    Up to ``n_trials_max`` patches are drawn; the first that ``image_validator`` accepts is used
    (any patch when there is no validator or no labels). If none is accepted, the input comes back
    unchanged (with an identity inverter), or, with ``can_fail=True``, ``None`` in place of every
    output.

    Args:
        patch_coord_generator: a `PatchCoordinateGenerator` (its ``rng`` is replaced by this op's).
        box_filter: optional `BoxFilter` for the boxes of the patch.
        image_validator: optional `ImageValidator` deciding whether a patch is acceptable.
        n_trials_max: number of patches to try.
        clip_boxes: clip the boxes to the patch.
        prob: probability of sampling a patch at all.
        background: fill colour where the patch reaches outside the image.
        can_fail: return ``None`` outputs when no patch is accepted.
        labels_format: column indices of the label rows.
        rng: ``None``, an int seed or a ``numpy.random.Generator``.
    """

    def __init__(
        self,
        patch_coord_generator: PatchCoordinateGenerator,
        box_filter: BoxFilter | None = None,
        image_validator: ImageValidator | None = None,
        n_trials_max: int = 3,
        clip_boxes: bool = True,
        prob: float = 1.0,
        background: Sequence[float] = (0, 0, 0),
        can_fail: bool = False,
        labels_format: Mapping[str, int] | None = None,
        rng=None,
    ):
        super().__init__(
            patch_coord_generator,
            box_filter,
            image_validator,
            n_trials_max,
            clip_boxes,
            prob,
            background,
            labels_format,
            rng,
        )
        self.can_fail = can_fail

    def __call__(self, image, labels=None, return_inverter: bool = False):
        if draws(self.rng, self.prob):
            self._prepare(image)
            result = self._first_patch(image, labels, return_inverter)
            if result is not None:
                return result
            if self.can_fail:
                n_outputs = (1 if labels is None else 2) + int(return_inverter)
                return None if n_outputs == 1 else (None,) * n_outputs
        return pack_output(image, as_labels(labels), identity_inverter, return_inverter)


class RandomPatchInf(_RandomPatchBase):
    """Keeps drawing random patches until one is accepted, or returns the input unchanged.

    Every round, with probability ``1 - prob`` the input comes back unchanged; otherwise new
    bounds are drawn from ``bound_generator`` (if any) into ``image_validator`` and up to
    ``n_trials_max`` patches are tried; patches whose aspect ratio ``w / h`` lies outside the
    generator's ``[min_aspect_ratio, max_aspect_ratio]`` are rejected. This is the Caffe SSD
    "batch sampler" random crop.

    Args:
        patch_coord_generator, box_filter, image_validator, clip_boxes, background,
        labels_format, rng: as for `RandomPatch`.
        bound_generator: optional `BoundGenerator` for the validator's bounds.
        n_trials_max: patches tried per round.
        prob: probability of trying to sample a patch in each round.
    """

    def __init__(
        self,
        patch_coord_generator: PatchCoordinateGenerator,
        box_filter: BoxFilter | None = None,
        image_validator: ImageValidator | None = None,
        bound_generator: BoundGenerator | None = None,
        n_trials_max: int = 50,
        clip_boxes: bool = True,
        prob: float = 0.857,
        background: Sequence[float] = (0, 0, 0),
        labels_format: Mapping[str, int] | None = None,
        rng=None,
    ):
        if not (bound_generator is None or isinstance(bound_generator, BoundGenerator)):
            raise ValueError(
                f"bound_generator must be a BoundGenerator or None, got {bound_generator!r}"
            )
        if prob >= 1.0 and image_validator is not None:
            # With prob 1 a validator that no patch can satisfy would loop forever.
            raise ValueError(f"prob must be < 1 when an image_validator is given, got {prob!r}")
        super().__init__(
            patch_coord_generator,
            box_filter,
            image_validator,
            n_trials_max,
            clip_boxes,
            prob,
            background,
            labels_format,
            rng,
        )
        self.bound_generator = bound_generator

    def __call__(self, image, labels=None, return_inverter: bool = False):
        self._prepare(image)
        if self.bound_generator is not None:
            self.bound_generator.rng = self.rng
        while draws(self.rng, self.prob):
            if self.image_validator is not None and self.bound_generator is not None:
                self.image_validator.bounds = self.bound_generator()
            result = self._first_patch(image, labels, return_inverter, check_aspect_ratio=True)
            if result is not None:
                return result
        return pack_output(image, as_labels(labels), identity_inverter, return_inverter)


class RandomMaxCropFixedAR:
    """Crops the largest patch of aspect ratio ``patch_aspect_ratio`` (``w / h``) at a random place.

    Args:
        patch_aspect_ratio: the aspect ratio of the output.
        box_filter, image_validator, n_trials_max, clip_boxes, labels_format, rng: as for
            `RandomPatch`.
    """

    def __init__(
        self,
        patch_aspect_ratio: float,
        box_filter: BoxFilter | None = None,
        image_validator: ImageValidator | None = None,
        n_trials_max: int = 3,
        clip_boxes: bool = True,
        labels_format: Mapping[str, int] | None = None,
        rng=None,
    ):
        if patch_aspect_ratio <= 0:
            raise ValueError(f"patch_aspect_ratio must be > 0, got {patch_aspect_ratio!r}")
        self.patch_aspect_ratio = patch_aspect_ratio
        self.labels_format = resolve_labels_format(labels_format)
        self.random_patch = RandomPatch(
            patch_coord_generator=PatchCoordinateGenerator(),
            box_filter=box_filter,
            image_validator=image_validator,
            n_trials_max=n_trials_max,
            clip_boxes=clip_boxes,
            prob=1.0,
            can_fail=False,
            labels_format=self.labels_format,
            rng=rng,
        )

    def __call__(self, image, labels=None, return_inverter: bool = False):
        img_height, img_width = image.shape[:2]
        if img_width / img_height < self.patch_aspect_ratio:
            patch_width = img_width
            patch_height = int(round(patch_width / self.patch_aspect_ratio))
        else:
            patch_height = img_height
            patch_width = int(round(patch_height * self.patch_aspect_ratio))
        self.random_patch.patch_coord_generator = PatchCoordinateGenerator(
            img_height=img_height,
            img_width=img_width,
            must_match="h_w",
            patch_height=max(1, patch_height),
            patch_width=max(1, patch_width),
        )
        self.random_patch.labels_format = self.labels_format
        return self.random_patch(image, labels, return_inverter)


class RandomPadFixedAR:
    """Pads the image to aspect ratio ``patch_aspect_ratio`` (``w / h``), placed at random.

    The padded patch is the smallest one of that aspect ratio that contains the whole image. (The
    original chose the side to keep by ``width < height`` instead of by the aspect ratios, so for
    some shapes it cropped the image instead of padding it; fixed.)

    Args:
        patch_aspect_ratio: the aspect ratio of the output.
        background: fill colour.
        labels_format: column indices of the label rows.
        rng: ``None``, an int seed or a ``numpy.random.Generator``.
    """

    def __init__(
        self,
        patch_aspect_ratio: float,
        background: Sequence[float] = (0, 0, 0),
        labels_format: Mapping[str, int] | None = None,
        rng=None,
    ):
        if patch_aspect_ratio <= 0:
            raise ValueError(f"patch_aspect_ratio must be > 0, got {patch_aspect_ratio!r}")
        self.patch_aspect_ratio = patch_aspect_ratio
        self.background = background
        self.labels_format = resolve_labels_format(labels_format)
        self.random_patch = RandomPatch(
            patch_coord_generator=PatchCoordinateGenerator(),
            box_filter=None,
            image_validator=None,
            n_trials_max=1,
            clip_boxes=False,
            prob=1.0,
            background=background,
            labels_format=self.labels_format,
            rng=rng,
        )

    def __call__(self, image, labels=None, return_inverter: bool = False):
        img_height, img_width = image.shape[:2]
        if img_width / img_height < self.patch_aspect_ratio:
            patch_height = img_height
            patch_width = max(img_width, int(round(patch_height * self.patch_aspect_ratio)))
        else:
            patch_width = img_width
            patch_height = max(img_height, int(round(patch_width / self.patch_aspect_ratio)))
        self.random_patch.patch_coord_generator = PatchCoordinateGenerator(
            img_height=img_height,
            img_width=img_width,
            must_match="h_w",
            patch_height=patch_height,
            patch_width=patch_width,
        )
        self.random_patch.background = self.background
        self.random_patch.labels_format = self.labels_format
        return self.random_patch(image, labels, return_inverter)
