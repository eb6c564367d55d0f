"""numpy bounding-box utilities: coordinate conversion, intersection area and IoU."""

from bounding_box_utils.bounding_box_utils import (
    BORDER_PIXELS,
    COORDS,
    LABEL_FORMAT,
    convert_coordinates,
    intersection_area,
    iou,
    to_corners,
)

__all__ = [
    "BORDER_PIXELS",
    "COORDS",
    "LABEL_FORMAT",
    "convert_coordinates",
    "intersection_area",
    "iou",
    "to_corners",
]
