"""The `DecodeDetections` Keras layer: SSD output -> top-k detections, with per-class NMS."""

from __future__ import annotations

import keras
from keras import ops

from bounding_box_utils.bounding_box_utils import check_coords
from keras_layers.detection_ops import decode_box_offsets, greedy_nms_top_k


def _check_decode_arguments(layer) -> None:
    """Validates the arguments shared by both decode layers (ValueErrors name the argument)."""
    check_coords(layer.coords)
    if layer.normalize_coords and (layer.img_height is None or layer.img_width is None):
        raise ValueError(
            "with normalize_coords=True, img_height and img_width are needed to scale the boxes "
            f"to pixels, got img_height={layer.img_height!r}, img_width={layer.img_width!r}"
        )
    if not 0 <= layer.confidence_thresh < 1:
        raise ValueError(f"confidence_thresh must be in [0, 1), got {layer.confidence_thresh!r}")
    if not 0 <= layer.iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in [0, 1], got {layer.iou_threshold!r}")
    if layer.top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {layer.top_k!r}")
    if layer.nms_max_output_size < 1:
        raise ValueError(
            f"nms_max_output_size must be a positive integer, got {layer.nms_max_output_size!r}"
        )


class _DecodeBase(keras.layers.Layer):
    """Arguments, shapes and config shared by `DecodeDetections` and `DecodeDetectionsFast`."""

    def __init__(
        self,
        confidence_thresh=0.01,
        iou_threshold=0.45,
        top_k=200,
        nms_max_output_size=400,
        coords="centroids",
        normalize_coords=True,
        img_height=None,
        img_width=None,
        **kwargs,
    ):
        # Pixel coordinates need float32 (float16 has a 0.25 px step at 300 px), so unless a
        # dtype is given the layer computes in float32 even under a mixed-precision policy.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.confidence_thresh = float(confidence_thresh)
        self.iou_threshold = float(iou_threshold)
        self.top_k = int(top_k)
        self.nms_max_output_size = int(nms_max_output_size)
        self.coords = coords
        self.normalize_coords = bool(normalize_coords)
        self.img_height = None if img_height is None else int(img_height)
        self.img_width = None if img_width is None else int(img_width)
        _check_decode_arguments(self)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None or input_shape[-1] < 14:
            raise ValueError(
                f"{type(self).__name__} expects y_pred of shape (batch, n_anchors, n_classes + 1 "
                f"+ 12) with at least one object class, got {input_shape}"
            )
        if input_shape[1] is None:
            raise ValueError(
                f"{type(self).__name__} needs a known number of anchors, got {input_shape}"
            )

    def _boxes(self, y_pred):
        return decode_box_offsets(
            y_pred, self.coords, self.normalize_coords, self.img_height, self.img_width
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.top_k, 6)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "confidence_thresh": self.confidence_thresh,
                "iou_threshold": self.iou_threshold,
                "top_k": self.top_k,
                "nms_max_output_size": self.nms_max_output_size,
                "coords": self.coords,
                "normalize_coords": self.normalize_coords,
                "img_height": self.img_height,
                "img_width": self.img_width,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="ssd_keras")
class DecodeDetections(_DecodeBase):
    """Decodes an SSD model output into the ``top_k`` best detections, with per-class NMS.

    For every object class (1 to n_classes; 0 is background): the boxes whose class confidence is
    **>** ``confidence_thresh`` go through greedy NMS (a box is dropped when a higher-confidence box
    of the same class, already kept, overlaps it with IoU **>** ``iou_threshold``), at most
    ``nms_max_output_size`` boxes per class survive; of all survivors the ``top_k`` with the highest
    confidence are returned. This is the original layer's algorithm, with two fixes: the rows are
    sorted by confidence (bug 11 of the original) and the layer runs on every Keras backend.

    Args:
        confidence_thresh: minimum class confidence (exclusive) of a detection.
        iou_threshold: NMS overlap limit; IoU exactly equal to it does not suppress.
        top_k: number of detections returned per image.
        nms_max_output_size: most boxes kept per class by NMS.
        coords: format of the anchors and offsets in ``y_pred``: ``'centroids'`` (SSD's),
            ``'minmax'`` or ``'corners'``.
        normalize_coords: whether the model's anchors are relative to the image size; the
            boxes are then scaled to pixels with ``img_width`` / ``img_height``.
        img_height: model input height in pixels.
        img_width: model input width in pixels.
        **kwargs: standard layer arguments (``name``, ``dtype``, ...).

    Input shape:
        ``(batch, n_anchors, n_classes + 1 + 12)``: softmax class scores, 4 offsets, 4 anchor
        coordinates, 4 variances (the SSD training-mode output).

    Output shape:
        ``(batch, top_k, 6)``: rows ``(class_id, confidence, xmin, ymin, xmax, ymax)``, boxes in
        pixels (with ``normalize_coords``) in corners format, sorted by decreasing confidence;
        rows after the last detection are all zeros.

    Example:
        >>> decode = DecodeDetections(confidence_thresh=0.01, iou_threshold=0.45, top_k=200,
        ...                           img_height=300, img_width=300)
        >>> detections = decode(y_pred)  # y_pred: (batch, 8732, 21 + 12) from ssd_300
    """

    def call(self, y_pred):
        boxes = self._boxes(y_pred)  # (batch, n_anchors, 4)
        scores = y_pred[..., 1:-12]  # (batch, n_anchors, n_classes)
        n_classes = scores.shape[-1]
        class_ids = ops.broadcast_to(
            ops.arange(1, n_classes + 1, dtype=scores.dtype), ops.shape(scores)
        )
        return greedy_nms_top_k(
            boxes,
            class_ids,
            scores,
            scores > self.confidence_thresh,
            self.iou_threshold,
            self.top_k,
            self.nms_max_output_size,
            group_by_column=True,
        )
