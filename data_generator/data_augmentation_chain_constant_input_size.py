"""`DataAugmentationConstantInputSize`: augmentation for datasets whose images all have the model's
input size (photometric distortions, random translation, zoom in or out, horizontal flip; the
output keeps the input's size)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from data_generator.data_augmentation_chain_original_ssd import SSDPhotometricDistortions
from data_generator.object_detection_2d_geometric_ops import (
    RandomFlip,
    RandomScale,
    RandomTranslate,
)
from data_generator.object_detection_2d_image_boxes_validation_utils import (
    box_filter_and_validator,
)
from data_generator.object_detection_2d_misc_utils import (
    call_transform,
    pack_output,
    resolve_labels_format,
    set_labels_format,
)


class DataAugmentationConstantInputSize:
    """Photometric and geometric augmentation that keeps the image size.

    With probability 0.5 the chain is: photometric distortions (contrast first), random translate,
    random zoom in, random flip; otherwise: photometric distortions (contrast last), random zoom
    out, random translate, random flip. Boxes are filtered by ``overlap_criterion`` with
    ``bounds_box_filter`` (and for a minimum area of 16 px and non-degeneracy); a translation or
    zoom is kept only if ``image_validator`` accepts it (``n_boxes_min`` boxes within
    ``bounds_validator``), else up to ``n_trials_max`` are tried and the image is left as is.

    Args:
        random_brightness: ``(lower, upper, prob)``.
        random_contrast: ``(lower, upper, prob)``.
        random_saturation: ``(lower, upper, prob)``.
        random_hue: ``(max_delta, prob)``.
        random_flip: probability of a horizontal flip.
        random_translate: ``((dy_min, dy_max), (dx_min, dx_max), prob)``, relative shifts.
        random_scale: ``(min_factor, max_factor, prob)`` with ``min_factor < 1 < max_factor``.
        n_trials_max: trials of each geometric op.
        clip_boxes: clip boxes to the image.
        overlap_criterion: ``'center_point'``, ``'iou'`` or ``'area'``.
        bounds_box_filter: ``(lower, upper)`` of the box filter.
        bounds_validator: ``(lower, upper)`` of the image validator.
        n_boxes_min: int or ``'all'``.
        background: fill colour of uncovered regions.
        labels_format: column indices of the label rows.
        rng: ``None``, an int seed or a ``numpy.random.Generator``; drives every random op.

    Call:
        ``chain(image, labels=None)`` -> ``image`` or ``(image, labels)``; uint8 RGB, same size.
    """

    def __init__(
        self,
        random_brightness: Sequence[float] = (-48, 48, 0.5),
        random_contrast: Sequence[float] = (0.5, 1.8, 0.5),
        random_saturation: Sequence[float] = (0.5, 1.8, 0.5),
        random_hue: Sequence[float] = (18, 0.5),
        random_flip: float = 0.5,
        random_translate=((0.03, 0.5), (0.03, 0.5), 0.5),
        random_scale: Sequence[float] = (0.5, 2.0, 0.5),
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
        if random_scale[0] >= 1 or random_scale[1] <= 1:
            raise ValueError(
                "random_scale needs min_factor < 1 < max_factor (the chain zooms both in and out), "
                f"got {tuple(random_scale)!r}"
            )
        self.labels_format = resolve_labels_format(labels_format)
        self.rng = np.random.default_rng(rng)
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
        geometric = dict(
            clip_boxes=clip_boxes,
            box_filter=self.box_filter,
            image_validator=self.image_validator,
            n_trials_max=n_trials_max,
            background=background,
            labels_format=self.labels_format,
            rng=self.rng,
        )
        self.random_flip = RandomFlip(
            dim="horizontal", prob=random_flip, labels_format=self.labels_format, rng=self.rng
        )
        self.random_translate = RandomTranslate(
            dy_minmax=random_translate[0],
            dx_minmax=random_translate[1],
            prob=random_translate[2],
            **geometric,
        )
        self.random_zoom_in = RandomScale(
            min_factor=1.0, max_factor=random_scale[1], prob=random_scale[2], **geometric
        )
        self.random_zoom_out = RandomScale(
            min_factor=random_scale[0], max_factor=1.0, prob=random_scale[2], **geometric
        )
        # Zooming in: translate first, then scale. Zooming out: scale first, then translate.
        self.sequence1 = self.photometric.sequence(contrast_first=True) + [
            self.random_translate,
            self.random_zoom_in,
            self.random_flip,
        ]
        self.sequence2 = self.photometric.sequence(contrast_first=False) + [
            self.random_zoom_out,
            self.random_translate,
            self.random_flip,
        ]

    def __call__(self, image, labels=None):
        sequence = self.sequence1 if self.rng.integers(2) else self.sequence2
        set_labels_format(sequence, self.labels_format)
        for transform in sequence:
            image, labels, _ = call_transform(transform, image, labels)
        return pack_output(image, labels)
