"""`DataAugmentationSatellite`: augmentation for top-down imagery, where any orientation is as
likely as any other (the variable-input-size chain plus vertical flips and quarter-turn
rotations)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from data_generator.data_augmentation_chain_variable_input_size import (
    DataAugmentationVariableInputSize,
)
from data_generator.object_detection_2d_geometric_ops import RandomFlip, RandomRotate


class DataAugmentationSatellite(DataAugmentationVariableInputSize):
    """Photometric distortions, horizontal and vertical flips, a rotation by 90/180/270 degrees,
    a random patch of near-square aspect ratio, then a resize.

    Args:
        random_rotate: ``(angles, prob)``.
        Other arguments: as for `DataAugmentationVariableInputSize` (note the defaults
        ``min_aspect_ratio=0.8``, ``max_aspect_ratio=1.25``); ``random_flip`` is the probability
        of each of the two flips.

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
        random_rotate=((90, 180, 270), 0.5),
        min_scale: float = 0.3,
        max_scale: float = 2.0,
        min_aspect_ratio: float = 0.8,
        max_aspect_ratio: float = 1.25,
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
        self.random_rotate = random_rotate
        super().__init__(
            resize_height,
            resize_width,
            random_brightness=random_brightness,
            random_contrast=random_contrast,
            random_saturation=random_saturation,
            random_hue=random_hue,
            random_flip=random_flip,
            min_scale=min_scale,
            max_scale=max_scale,
            min_aspect_ratio=min_aspect_ratio,
            max_aspect_ratio=max_aspect_ratio,
            n_trials_max=n_trials_max,
            clip_boxes=clip_boxes,
            overlap_criterion=overlap_criterion,
            bounds_box_filter=bounds_box_filter,
            bounds_validator=bounds_validator,
            n_boxes_min=n_boxes_min,
            background=background,
            labels_format=labels_format,
            rng=rng,
        )

    def _orientation_ops(self) -> list:
        angles, prob = self.random_rotate
        return [
            *super()._orientation_ops(),
            RandomFlip(
                dim="vertical",
                prob=self.random_flip,
                labels_format=self.labels_format,
                rng=self.rng,
            ),
            RandomRotate(angles=angles, prob=prob, labels_format=self.labels_format, rng=self.rng),
        ]
