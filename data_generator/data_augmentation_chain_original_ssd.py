"""The data augmentation of the original Caffe SSD (Liu et al., 2016), as `SSDDataAugmentation`.

In order: photometric distortions (brightness, contrast, saturation, hue; contrast before or after
the HSV part with equal probability), expansion (with probability 0.5 the image is placed at a
random position on a canvas 1x to 4x its size filled with the mean colour), the minimum-IoU random
crop (Caffe's batch sampler), a horizontal flip with probability 0.5, and a resize to the model's
input size with a randomly chosen interpolation.

All random decisions come from one ``numpy.random.Generator`` (``rng``), so a seed reproduces the
whole chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from data_generator.object_detection_2d_geometric_ops import RandomFlip, ResizeRandomInterp
from data_generator.object_detection_2d_image_boxes_validation_utils import (
    BoundGenerator,
    BoxFilter,
    ImageValidator,
)
from data_generator.object_detection_2d_misc_utils import (
    call_transform,
    pack_output,
    resolve_labels_format,
    set_labels_format,
)
from data_generator.object_detection_2d_patch_sampling_ops import (
    PatchCoordinateGenerator,
    RandomPatch,
    RandomPatchInf,
)
from data_generator.object_detection_2d_photometric_ops import (
    ConvertColor,
    ConvertDataType,
    ConvertTo3Channels,
    RandomBrightness,
    RandomChannelSwap,
    RandomContrast,
    RandomHue,
    RandomSaturation,
)


class SSDRandomCrop:
    """Caffe SSD's random crop: patches of 0.3-1.0 of each side, aspect ratio 0.5-2.0, accepted
    when some box has an IoU with the patch above a minimum drawn from {any, 0.1, 0.3, 0.5, 0.7,
    0.9}; boxes whose centre leaves the patch are dropped. Each round of 50 trials is skipped (the
    image returned unchanged) with probability 0.143.

    Args:
        labels_format: column indices of the label rows.
        rng: ``None``, an int seed or a ``numpy.random.Generator``.
    """

    def __init__(self, labels_format: Mapping[str, int] | None = None, rng=None):
        self.labels_format = resolve_labels_format(labels_format)
        self.rng = np.random.default_rng(rng)
        self.bound_generator = BoundGenerator(
            sample_space=(
                (None, None),
                (0.1, None),
                (0.3, None),
                (0.5, None),
                (0.7, None),
                (0.9, None),
            ),
            weights=None,
            rng=self.rng,
        )
        self.patch_coord_generator = PatchCoordinateGenerator(
            must_match="h_w",
            min_scale=0.3,
            max_scale=1.0,
            scale_uniformly=False,
            min_aspect_ratio=0.5,
            max_aspect_ratio=2.0,
            rng=self.rng,
        )
        self.box_filter = BoxFilter(
            check_overlap=True,
            check_min_area=False,
            check_degenerate=False,
            overlap_criterion="center_point",
            labels_format=self.labels_format,
        )
        self.image_validator = ImageValidator(
            overlap_criterion="iou",
            n_boxes_min=1,
            labels_format=self.labels_format,
            border_pixels="half",
        )
        self.random_crop = RandomPatchInf(
            patch_coord_generator=self.patch_coord_generator,
            box_filter=self.box_filter,
            image_validator=self.image_validator,
            bound_generator=self.bound_generator,
            n_trials_max=50,
            clip_boxes=True,
            prob=0.857,
            labels_format=self.labels_format,
            rng=self.rng,
        )

    def __call__(self, image, labels=None, return_inverter: bool = False):
        self.random_crop.labels_format = self.labels_format
        return self.random_crop(image, labels, return_inverter)


class SSDExpand:
    """Caffe SSD's zoom-out: with probability 0.5 the image goes at a random place on a canvas
    1x to 4x its size (one factor for both sides) filled with ``background``.

    Args:
        background: fill colour (the training set's mean colour).
        labels_format: column indices of the label rows.
        rng: ``None``, an int seed or a ``numpy.random.Generator``.
    """

    def __init__(
        self,
        background: Sequence[float] = (123, 117, 104),
        labels_format: Mapping[str, int] | None = None,
        rng=None,
    ):
        self.labels_format = resolve_labels_format(labels_format)
        self.rng = np.random.default_rng(rng)
        self.patch_coord_generator = PatchCoordinateGenerator(
            must_match="h_w", min_scale=1.0, max_scale=4.0, scale_uniformly=True, rng=self.rng
        )
        self.expand = RandomPatch(
            patch_coord_generator=self.patch_coord_generator,
            box_filter=None,
            image_validator=None,
            n_trials_max=1,
            clip_boxes=False,
            prob=0.5,
            background=background,
            labels_format=self.labels_format,
            rng=self.rng,
        )

    def __call__(self, image, labels=None, return_inverter: bool = False):
        self.expand.labels_format = self.labels_format
        return self.expand(image, labels, return_inverter)


class SSDPhotometricDistortions:
    """Photometric distortions of uint8 RGB images, Caffe SSD's by default.

    Brightness, contrast, saturation and hue, each applied with its own probability; contrast
    comes before the HSV part (saturation, hue) or after it. Called directly, the order is drawn
    with equal probability (as in Caffe SSD); chains that tie other choices to the order use
    `sequence`. A channel swap is added at the end only when its probability is > 0 (Caffe SSD
    keeps it at 0).

    Args:
        random_brightness: ``(lower, upper, prob)`` of the added delta.
        random_contrast: ``(lower, upper, prob)`` of the contrast factor.
        random_saturation: ``(lower, upper, prob)`` of the saturation factor.
        random_hue: ``(max_delta, prob)``.
        random_channel_swap: probability of a random channel permutation.
        rng: ``None``, an int seed or a ``numpy.random.Generator``.
    """

    def __init__(
        self,
        random_brightness: Sequence[float] = (-32, 32, 0.5),
        random_contrast: Sequence[float] = (0.5, 1.5, 0.5),
        random_saturation: Sequence[float] = (0.5, 1.5, 0.5),
        random_hue: Sequence[float] = (18, 0.5),
        random_channel_swap: float = 0.0,
        rng=None,
    ):
        self.rng = np.random.default_rng(rng)
        self.convert_RGB_to_HSV = ConvertColor(current="RGB", to="HSV")
        self.convert_HSV_to_RGB = ConvertColor(current="HSV", to="RGB")
        self.convert_to_float32 = ConvertDataType(to="float32")
        self.convert_to_uint8 = ConvertDataType(to="uint8")
        self.convert_to_3_channels = ConvertTo3Channels()
        self.random_brightness = RandomBrightness(*random_brightness, rng=self.rng)
        self.random_contrast = RandomContrast(*random_contrast, rng=self.rng)
        self.random_saturation = RandomSaturation(*random_saturation, rng=self.rng)
        self.random_hue = RandomHue(*random_hue, rng=self.rng)
        self.random_channel_swap = RandomChannelSwap(prob=random_channel_swap, rng=self.rng)

    def sequence(self, contrast_first: bool) -> list:
        """The ops in order: RGB uint8 (any channel count) in, RGB uint8 out."""
        hsv_part = [
            self.convert_to_uint8,
            self.convert_RGB_to_HSV,
            self.convert_to_float32,
            self.random_saturation,
            self.random_hue,
            self.convert_to_uint8,
            self.convert_HSV_to_RGB,
        ]
        start = [self.convert_to_3_channels, self.convert_to_float32, self.random_brightness]
        if contrast_first:
            ops = [*start, self.random_contrast, *hsv_part]
        else:
            contrast = [self.convert_to_float32, self.random_contrast, self.convert_to_uint8]
            ops = [*start, *hsv_part, *contrast]
        if self.random_channel_swap.prob > 0:
            ops.append(self.random_channel_swap)
        return ops

    def __call__(self, image, labels=None):
        for transform in self.sequence(contrast_first=bool(self.rng.integers(2))):
            image, labels, _ = call_transform(transform, image, labels)
        return pack_output(image, labels)


class SSDDataAugmentation:
    """The full Caffe SSD training augmentation.

    Args:
        img_height, img_width: the model's input size (the output size).
        background: fill colour of the expansion (the training set's mean colour, RGB).
        labels_format: column indices of the label rows.
        rng: ``None``, an int seed or a ``numpy.random.Generator``; drives every random op.

    Call:
        ``chain(image, labels=None, return_inverter=False)``: ``image`` ``(H, W)`` or ``(H, W, C)``
        uint8 (gray and RGBA become RGB), ``labels`` ``(k, 5+)``. Returns ``image`` ``(img_height,
        img_width, 3)`` uint8 and the labels in its coordinates (boxes left degenerate are
        dropped; an image may end up with no boxes); with ``return_inverter=True`` also the list
        of inverters to apply, in order, to predictions on the output (see
        `apply_inverse_transforms`).

    Example:
        >>> augment = SSDDataAugmentation(300, 300, rng=0)
        >>> image, labels = augment(image, labels)
    """

    def __init__(
        self,
        img_height: int = 300,
        img_width: int = 300,
        background: Sequence[float] = (123, 117, 104),
        labels_format: Mapping[str, int] | None = None,
        rng=None,
    ):
        self.labels_format = resolve_labels_format(labels_format)
        self.rng = np.random.default_rng(rng)
        self.photometric_distortions = SSDPhotometricDistortions(rng=self.rng)
        self.expand = SSDExpand(
            background=background, labels_format=self.labels_format, rng=self.rng
        )
        self.random_crop = SSDRandomCrop(labels_format=self.labels_format, rng=self.rng)
        self.random_flip = RandomFlip(
            dim="horizontal", prob=0.5, labels_format=self.labels_format, rng=self.rng
        )
        # Resizing can shrink small boxes to zero width or height; those are dropped.
        self.box_filter = BoxFilter(
            check_overlap=False,
            check_min_area=False,
            check_degenerate=True,
            labels_format=self.labels_format,
        )
        self.resize = ResizeRandomInterp(
            height=img_height,
            width=img_width,
            interpolation_modes=[
                cv2.INTER_NEAREST,
                cv2.INTER_LINEAR,
                cv2.INTER_CUBIC,
                cv2.INTER_AREA,
                cv2.INTER_LANCZOS4,
            ],
            box_filter=self.box_filter,
            labels_format=self.labels_format,
            rng=self.rng,
        )
        # (transform, whether it has an inverter)
        self.sequence = [
            (self.photometric_distortions, False),
            (self.expand, True),
            (self.random_crop, True),
            (self.random_flip, True),
            (self.resize, True),
        ]

    def __call__(self, image, labels=None, return_inverter: bool = False):
        set_labels_format([transform for transform, _ in self.sequence], self.labels_format)
        inverters = []
        for transform, invertible in self.sequence:
            image, labels, inverter = call_transform(
                transform, image, labels, return_inverter and invertible
            )
            if inverter is not None:
                inverters.append(inverter)
        return pack_output(image, labels, inverters[::-1], return_inverter)
