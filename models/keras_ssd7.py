"""SSD7: a small 7-layer SSD, trainable from scratch, with the original ssd_keras API and names.

It is also the template for SSDs on other base networks: take the shared arguments as a
`models.ssd_common.BuilderArgs`, build a feature extractor on its preprocessed input, pick the
feature maps that carry predictors, and hand them to `BuilderArgs.model` (or, below it,
`models.ssd_common.ssd_outputs`).
"""

from __future__ import annotations

import keras

from models.ssd_common import BuilderArgs, conv2d

#: The configuration of the original ssd7_training notebook (Udacity traffic data, 5 classes).
#: Use as ``build_model(**SSD7_UDACITY)``; override with ``build_model(**{**SSD7_UDACITY, ...})``.
SSD7_UDACITY = {
    "image_size": (300, 480, 3),
    "n_classes": 5,
    "l2_regularization": 0.0005,
    "scales": [0.08, 0.16, 0.32, 0.64, 0.96],
    "aspect_ratios_global": [0.5, 1.0, 2.0],
    "aspect_ratios_per_layer": None,
    "two_boxes_for_ar1": True,
    "steps": None,
    "offsets": None,
    "clip_boxes": False,
    "variances": [1.0, 1.0, 1.0, 1.0],
    "normalize_coords": True,
    "subtract_mean": 127.5,
    "divide_by_stddev": 127.5,
}

_FILTERS = (32, 48, 64, 64, 48, 48, 32)


def build_model(
    image_size,
    n_classes,
    mode="training",
    l2_regularization=0.0,
    min_scale=0.1,
    max_scale=0.9,
    scales=None,
    aspect_ratios_global=(0.5, 1.0, 2.0),
    aspect_ratios_per_layer=None,
    two_boxes_for_ar1=True,
    steps=None,
    offsets=None,
    clip_boxes=False,
    variances=(1.0, 1.0, 1.0, 1.0),
    coords="centroids",
    normalize_coords=False,
    subtract_mean=None,
    divide_by_stddev=None,
    swap_channels=False,
    confidence_thresh=0.01,
    iou_threshold=0.45,
    top_k=200,
    nms_max_output_size=400,
    return_predictor_sizes=False,
):
    """Builds SSD7, as the original ssd_keras ``models.keras_ssd7.build_model``.

    Seven conv blocks ``conv{i}`` (5x5 then 3x3, each followed by BatchNormalization ``bn{i}``
    and ELU ``elu{i}``; 2x2 max pools ``pool1`` ... ``pool6``), with predictors on blocks 4-7:
    ``classes{i}`` and ``boxes{i}`` 3x3 convs and ``anchors{i}`` `AnchorBoxes` layers. At
    300x480x3 with 5 classes (`SSD7_UDACITY`) it has 11692 anchors and 213,904 parameters.

    Args:
        image_size: ``(height, width, channels)`` of the input.
        n_classes: number of object classes, without the background class.
        mode: ``'training'``, ``'inference'`` or ``'inference_fast'`` (see `ssd_300`).
        l2_regularization: L2 weight decay on all convolution kernels.
        min_scale, max_scale: anchor scales ``linspace(min, max, 5)`` when ``scales`` is None.
        scales: 5 anchor scales, the last one only for the second ratio-1 box of the last layer.
        aspect_ratios_global: aspect ratios of every predictor layer (if ``_per_layer`` is None).
        aspect_ratios_per_layer: 4 lists of aspect ratios, one per predictor layer.
        two_boxes_for_ar1: whether aspect ratio 1 gets a second, larger box.
        steps: 4 anchor strides in pixels, or None for ``image size / feature map size``.
        offsets: 4 offsets of the first anchor centre, in steps, or None (0.5).
        clip_boxes, variances, coords, normalize_coords, subtract_mean, divide_by_stddev,
        swap_channels, confidence_thresh, iou_threshold, top_k, nms_max_output_size,
        return_predictor_sizes: as in `models.keras_ssd300.ssd_300`.

    Returns:
        The `keras.Model` (and, with ``return_predictor_sizes``, a ``(4, 2)`` numpy array of
        ``(fh, fw)``). Output in training mode ``(batch, n_anchors, n_classes + 1 + 12)``; in the
        inference modes ``(batch, top_k, 6)`` = ``[class_id, confidence, xmin, ymin, xmax, ymax]``.

    Example:
        >>> model = build_model(**SSD7_UDACITY)
        >>> model.count_params()
        213904
    """
    args = BuilderArgs.from_locals(4, locals())
    inputs, x = args.preprocessed_input()
    blocks = []
    for i, filters in enumerate(_FILTERS, start=1):
        kernel = (5, 5) if i == 1 else (3, 3)
        conv = conv2d(filters, kernel, f"conv{i}", l2_regularization, padding="same")
        x = conv(x)
        x = keras.layers.BatchNormalization(axis=3, momentum=0.99, name=f"bn{i}")(x)
        x = keras.layers.ELU(name=f"elu{i}")(x)
        blocks.append(x)
        if i < len(_FILTERS):
            x = keras.layers.MaxPooling2D(pool_size=(2, 2), name=f"pool{i}")(x)

    model, predictor_sizes = args.model(
        inputs,
        blocks[3:],
        [(f"classes{i}", f"boxes{i}", f"anchors{i}") for i in range(4, 8)],
        ("classes_concat", "boxes_concat", "anchors_concat", "classes_softmax"),
        name="ssd7",
    )
    return (model, predictor_sizes) if return_predictor_sizes else model
