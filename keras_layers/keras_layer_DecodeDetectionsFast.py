"""The `DecodeDetectionsFast` Keras layer: one class per anchor, one class-agnostic NMS."""

from __future__ import annotations

import keras
from keras import ops

from keras_layers.detection_ops import greedy_nms_top_k
from keras_layers.keras_layer_DecodeDetections import _DecodeBase


@keras.saving.register_keras_serializable(package="ssd_keras")
class DecodeDetectionsFast(_DecodeBase):
    """Decodes an SSD model output with one class per anchor and one class-agnostic NMS.

    Each anchor gets the class with the highest score **including background**; anchors whose
    best class is background are dropped, the others with confidence **>** ``confidence_thresh``
    go through a single greedy NMS over all classes (IoU **>** ``iou_threshold`` suppresses, at
    most ``nms_max_output_size`` survivors), and the ``top_k`` most confident are returned.
    Cheaper than `DecodeDetections` but a box of one class can suppress a box of another.
    As in the original layer the threshold is exclusive (the original numpy
    ``decode_detections_fast`` used ``>=``, bug 12); rows are sorted by confidence (bug 11).

    Args:
        confidence_thresh: minimum confidence (exclusive) of a detection.
        iou_threshold: NMS overlap limit; IoU exactly equal to it does not suppress.
        top_k: number of detections returned per image.
        nms_max_output_size: most boxes kept by NMS.
        coords: format of the anchors and offsets in ``y_pred``: ``'centroids'``, ``'minmax'``
            or ``'corners'``.
        normalize_coords: whether the model's anchors are relative to the image size; the
            boxes are then scaled to pixels with ``img_width`` / ``img_height``.
        img_height: model input height in pixels.
        img_width: model input width in pixels.
        **kwargs: standard layer arguments (``name``, ``dtype``, ...).

    Input shape:
        ``(batch, n_anchors, n_classes + 1 + 12)`` (the SSD training-mode output).

    Output shape:
        ``(batch, top_k, 6)``: rows ``(class_id, confidence, xmin, ymin, xmax, ymax)`` sorted by
        decreasing confidence, all-zero rows after the last detection.
    """

    def call(self, y_pred):
        boxes = self._boxes(y_pred)
        class_scores = y_pred[..., :-12]  # (batch, n_anchors, n_classes + 1)
        scores = ops.max(class_scores, axis=-1, keepdims=True)  # (batch, n_anchors, 1)
        # argmax as "first column holding the maximum" (numpy's tie rule): Keras' TensorFlow
        # argmax tests the sign bit of zeros with a Bitcast, which ONNX has no op for.
        n_columns = class_scores.shape[-1]
        columns = ops.arange(n_columns, dtype="int32")
        class_ids = ops.min(
            ops.where(ops.equal(class_scores, scores), columns, n_columns), axis=-1, keepdims=True
        )  # (batch, n_anchors, 1)
        candidates = ops.logical_and(ops.not_equal(class_ids, 0), scores > self.confidence_thresh)
        return greedy_nms_top_k(
            boxes,
            class_ids,
            scores,
            candidates,
            self.iou_threshold,
            self.top_k,
            self.nms_max_output_size,
            group_by_column=False,
        )
