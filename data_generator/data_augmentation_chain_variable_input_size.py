"""`DataAugmentationVariableInputSize`: augmentation for datasets with images of varied sizes
(photometric distortions, horizontal flip, a random patch of random aspect ratio, and a resize to
the model's input size)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from data_generator.data_augmentation_chain_original_ssd import SSDPhotometricDistortions
from data_generator.object_detection_2d_geometric_ops import RandomFlip, Resize
from data_generator.object_detection_2d_image_boxes_validation_utils import (
    box_filter_and_validator,
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
)


class DataAugmentationVariableInputSize:
    """Photometric distortions, a horizontal flip, a random patch, then a resize.

    The patch's width is ``min_scale`` to ``max_scale`` times the image width and its aspect
    ratio ``w / h`` is drawn from ``[min_aspect_ratio, max_aspect_ratio]`` (patches larger than
    the image pad with ``background``). A patch is kept only if ``image_validator`` accepts it
    (``n_boxes_min`` boxes within ``bounds_validator`` by ``overlap_criterion``), else up to
    ``n_trials_max`` are tried and the whole image is used. Boxes are filtered by the criterion
    with ``bounds_box_filter``, a minimum area of 16 px and non-degeneracy, after the patch and
    after the resize.

    Args:
        resize_height, resize_width: the output size.
        random_brightness: ``(lower, upper, prob)``.
        random_contrast: ``(lower, upper, prob)``.
        random_saturation: ``(lower, upper, prob)``.
        random_hue: ``(max_delta, prob)``.
        random_flip: probability of a horizontal flip.
        min_scale, max_scale: range of the patch width relative to the image width.
        min_aspect_ratio, max_aspect_ratio: range of the patch aspect ratio.
        n_trials_max: patches to try.
        clip_boxes: clip boxes to the patch.
        overlap_criterion: ``'center_point'``, ``'iou'`` or ``'area'``.
        bounds_box_filter: ``(lower, upper)`` of the box filter.
        bounds_validator: ``(lower, upper)`` of the image validator.
        n_boxes_min: int or ``'all'``.
        background: fill colour where a patch reaches outside the image.
        labels_format: column indices of the label rows.
        rng: ``None``, an int seed or a ``numpy.random.Generator``; drives every random op.

    Call:
        ``chain(image, labels=None)`` -> ``image`` or ``(image, labels)``; uint8 RGB of shape
        ``(resize_height, resize_width, 3)``.
    """

    def __init__(
        self,
        resize_height: int,
        resize_width: int,
        random_brightness: Sequence[float] = (-48, 48, 0.5),
        random_contrast: Sequence[float] = (0.5, 1.8, 0.5),
        random_saturation: Sequence[float] = (0.5, 1.8, 0.5),
        random_hue: Sequence[float] = (18, 0.5),
        random_flip: float = 0.5,
        min_scale: float = 0.3,
        max_scale: float = 2.0,
        min_aspect_ratio: float = 0.5,
        max_aspect_ratio: float = 2.0,
        n_trials_max: int = 3,
        clip_boxes: bool = True,
        overlap_criterion: str = "area",
        bounds_box_filter: Sequence[float] = (0.3, 1.0),
        bounds_validator: Sequence[float] = (0.5, 1.0),
        n_boxes_min: int | str = 1,
        background: Sequence[float] = (0, 0, 0),
        labels_format: Mapping[str, int] | None = None,
        rng=None,
    ):
        self.labels_format = resolve_labels_format(labels_format)
        self.rng = np.random.default_rng(rng)
        self.random_flip = random_flip
        self.box_filter, self.image_validator = box_filter_and_validator(
            overlap_criterion, bounds_box_filter, bounds_validator, n_boxes_min, self.labels_format
        )
        self.photometric = SSDPhotometricDistortions(
            random_brightness=random_brightness,
            random_contrast=random_contrast,
            random_saturation=random_saturation,
            random_hue=random_hue,
            rng=self.rng,
        )
        self.random_patch = RandomPatch(
            patch_coord_generator=PatchCoordinateGenerator(
                must_match="w_ar",
                min_scale=min_scale,
                max_scale=max_scale,
                scale_uniformly=False,
                min_aspect_ratio=min_aspect_ratio,
                max_aspect_ratio=max_aspect_ratio,
                rng=self.rng,
            ),
            box_filter=self.box_filter,
            image_validator=self.image_validator,
            n_trials_max=n_trials_max,
            clip_boxes=clip_boxes,
            prob=1.0,
            can_fail=False,
            background=background,
            labels_format=self.labels_format,
            rng=self.rng,
        )
        self.resize = Resize(
            height=resize_height,
            width=resize_width,
            box_filter=self.box_filter,
            labels_format=self.labels_format,
        )
        self.transformations = [
            *self.photometric.sequence(contrast_first=True),
            *self._orientation_ops(),
            self.random_patch,
            self.resize,
        ]

    def _orientation_ops(self) -> list:
        """The flips (and rotations) between the photometric part and the patch."""
        return [
            RandomFlip(
                dim="horizontal",
                prob=self.random_flip,
                labels_format=self.labels_format,
                rng=self.rng,
            )
        ]

    def __call__(self, image, labels=None):
        set_labels_format(self.transformations, self.labels_format)
        for transform in self.transformations:
            image, labels, _ = call_transform(transform, image, labels)
        return pack_output(image, labels)
