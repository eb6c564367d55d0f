"""The `AnchorBoxes` Keras layer: one predictor layer's anchors as a model tensor.

The anchor maths lives in `ssd_encoder_decoder.anchor_boxes.generate_anchor_boxes_for_layer`; this
layer only calls it once the feature-map size is known (in `build`) and tiles the result over the
batch. Unlike the original, `get_config` includes `this_steps` and `this_offsets`, so a reloaded
SSD300 keeps its step of 8 px instead of falling back to ``300 / 38``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from bounding_box_utils.bounding_box_utils import check_coords
from ssd_encoder_decoder.anchor_boxes import (
    generate_anchor_boxes_for_layer,
    n_boxes_per_location,
)


def _json_pair(value, name: str):
    """``value`` as a JSON-able number, ``[h, w]`` list or None; raises for anything else."""
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        number = float(array)
        return int(number) if number.is_integer() and not isinstance(value, float) else number
    if array.shape == (2,):
        return [float(v) for v in array]
    raise ValueError(f"{name} must be None, a number or a (height, width) pair, got {value!r}")


@keras.saving.register_keras_serializable(package="ssd_keras")
class AnchorBoxes(keras.layers.Layer):
    """Anchor boxes (and their variances) of one SSD predictor layer.

    The output does not depend on the input values, only on its spatial shape: it is the layer's
    anchor grid from `generate_anchor_boxes_for_layer`, with the 4 variances appended to every box,
    repeated for each batch item. SSD models concatenate these tensors into the last 8 columns of
    their output so that the loss and the decoders find the anchors next to the predictions.

    Args:
        img_height: model input height in pixels.
        img_width: model input width in pixels.
        this_scale: box size of this layer as a fraction of ``min(img_height, img_width)``.
        next_scale: the next layer's scale; only used for the second box of aspect ratio 1.
        aspect_ratios: box aspect ratios (width / height), in box order.
        two_boxes_for_ar1: whether ratio 1 gets a second box of side
            ``sqrt(this_scale * next_scale) * min(img_height, img_width)``.
        this_steps: distance between neighbouring anchor centres in pixels: a number, a
            ``(height, width)`` pair, or None for ``img_size / feature_map_size`` per axis.
        this_offsets: position of the first centre, in steps: a number, a ``(height, width)``
            pair, or None for 0.5.
        clip_boxes: clip the anchors to the image.
        variances: 4 positive numbers that divide the encoded offsets.
        coords: anchor format: ``'centroids'`` ``(cx, cy, w, h)``, ``'minmax'``
            ``(xmin, xmax, ymin, ymax)`` or ``'corners'`` ``(xmin, ymin, xmax, ymax)``.
        normalize_coords: coordinates relative to the image size (x / img_width, y / img_height)
            instead of pixels.
        **kwargs: standard layer arguments (``name``, ``dtype``, ...).

    Input shape:
        4D tensor ``(batch, fh, fw, channels)`` (channels-last), e.g. the predictor's feature map.
        ``fh`` and ``fw`` must be known when the layer is built.

    Output shape:
        5D tensor ``(batch, fh, fw, n_boxes, 8)``: the 4 anchor coordinates in ``coords`` format
        followed by the 4 variances, the same for every batch item.

    Example:
        >>> layer = AnchorBoxes(300, 300, this_scale=0.2, next_scale=0.37,
        ...                     aspect_ratios=[1.0, 2.0, 0.5, 3.0, 1.0 / 3.0],
        ...                     this_steps=16, this_offsets=0.5)
        >>> layer.n_boxes
        6
        >>> tuple(layer(np.zeros((2, 19, 19, 1024), "float32")).shape)
        (2, 19, 19, 6, 8)
    """

    def __init__(
        self,
        img_height,
        img_width,
        this_scale,
        next_scale,
        aspect_ratios=(0.5, 1.0, 2.0),
        two_boxes_for_ar1=True,
        this_steps=None,
        this_offsets=None,
        clip_boxes=False,
        variances=(0.1, 0.1, 0.2, 0.2),
        coords="centroids",
        normalize_coords=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if this_scale < 0 or next_scale < 0 or this_scale > 1:
            raise ValueError(
                "this_scale must be in [0, 1] and next_scale must be >= 0, got "
                f"this_scale={this_scale!r}, next_scale={next_scale!r}"
            )
        variances = [float(v) for v in variances]
        if len(variances) != 4:
            raise ValueError(f"variances must have 4 values, got {len(variances)}: {variances}")
        if any(v <= 0 for v in variances):
            raise ValueError(f"variances must all be positive, got {variances}")
        aspect_ratios = [float(ar) for ar in aspect_ratios]
        if not aspect_ratios or any(ar <= 0 for ar in aspect_ratios):
            raise ValueError(
                f"aspect_ratios must be a non-empty list of positive numbers, got {aspect_ratios}"
            )
        self.img_height = int(img_height)
        self.img_width = int(img_width)
        self.this_scale = float(this_scale)
        self.next_scale = float(next_scale)
        self.aspect_ratios = aspect_ratios
        self.two_boxes_for_ar1 = bool(two_boxes_for_ar1)
        self.this_steps = _json_pair(this_steps, "this_steps")
        self.this_offsets = _json_pair(this_offsets, "this_offsets")
        self.clip_boxes = bool(clip_boxes)
        self.variances = variances
        self.coords = check_coords(coords)
        self.normalize_coords = bool(normalize_coords)
        self._anchors = None

    @property
    def n_boxes(self) -> int:
        """Number of anchors per feature-map cell."""
        return n_boxes_per_location(self.aspect_ratios, self.two_boxes_for_ar1)

    def anchors_for(self, feature_map_size) -> np.ndarray:
        """The layer's output for one batch item, as numpy.

        Args:
            feature_map_size: ``(fh, fw)``.

        Returns:
            ``(fh, fw, n_boxes, 8)`` float64: anchors in ``coords`` format, then the variances.
        """
        boxes = generate_anchor_boxes_for_layer(
            self.img_height,
            self.img_width,
            feature_map_size=feature_map_size,
            this_scale=self.this_scale,
            next_scale=self.next_scale,
            aspect_ratios=self.aspect_ratios,
            two_boxes_for_ar1=self.two_boxes_for_ar1,
            this_steps=self.this_steps,
            this_offsets=self.this_offsets,
            clip_boxes=self.clip_boxes,
            normalize_coords=self.normalize_coords,
            coords=self.coords,
        )
        variances = np.broadcast_to(np.array(self.variances), boxes.shape[:-1] + (4,))
        return np.concatenate([boxes, variances], axis=-1)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"AnchorBoxes expects a 4D (batch, fh, fw, channels) input, got shape {input_shape}"
            )
        fh, fw = input_shape[1], input_shape[2]
        if fh is None or fw is None:
            raise ValueError(
                "AnchorBoxes needs the feature-map height and width at build time, got input "
                f"shape {input_shape}"
            )
        self._anchors = self.anchors_for((fh, fw)).astype(np.float32)

    def call(self, inputs):
        anchors = ops.convert_to_tensor(self._anchors, dtype=self.compute_dtype)
        # A (batch, 1, 1, 1, 1) zero tensor broadcasts the grid over the batch without reading the
        # input values (so NaNs in the feature map cannot leak into the anchors).
        zeros = ops.zeros_like(inputs[:, :1, :1, :1], dtype=self.compute_dtype)
        return ops.expand_dims(zeros, -1) + anchors

    def compute_output_shape(self, input_shape):
        batch, fh, fw = input_shape[0], input_shape[1], input_shape[2]
        return (batch, fh, fw, self.n_boxes, 8)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "img_height": self.img_height,
                "img_width": self.img_width,
                "this_scale": self.this_scale,
                "next_scale": self.next_scale,
                "aspect_ratios": list(self.aspect_ratios),
                "two_boxes_for_ar1": self.two_boxes_for_ar1,
                "this_steps": self.this_steps,
                "this_offsets": self.this_offsets,
                "clip_boxes": self.clip_boxes,
                "variances": list(self.variances),
                "coords": self.coords,
                "normalize_coords": self.normalize_coords,
            }
        )
        return config
