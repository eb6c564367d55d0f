"""SSD512 (reduced VGG16 base) in Keras 3, with the original ssd_keras API and layer names."""

from __future__ import annotations

from models.ssd_common import BuilderArgs, vgg16_ssd

_ASPECT_RATIOS = (
    (1.0, 2.0, 0.5),
    (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0),
    (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0),
    (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0),
    (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0),
    (1.0, 2.0, 0.5),
    (1.0, 2.0, 0.5),
)
_STEPS = (8, 16, 32, 64, 128, 256, 512)
# conv6_2 ... conv10_2 (`models.ssd_common.extra_block`): 32 -> 16 -> 8 -> 4 -> 2 -> 1 at
# 512x512; conv10_2 is a 4x4 valid convolution.
_EXTRA_BLOCKS = (
    {"index": 6, "filters_1": 256, "filters_2": 512, "pad": True},
    {"index": 7, "filters_1": 128, "filters_2": 256, "pad": True},
    {"index": 8, "filters_1": 128, "filters_2": 256, "pad": True},
    {"index": 9, "filters_1": 128, "filters_2": 256, "pad": True},
    {
        "index": 10,
        "filters_1": 128,
        "filters_2": 256,
        "pad": True,
        "strides": (1, 1),
        "kernel_size": (4, 4),
    },
)

#: The original SSD512 Pascal VOC configuration (ssd512_inference notebook).
#: Use as ``ssd_512(**SSD512_VOC)``; override entries with
#: ``ssd_512(**{**SSD512_VOC, "mode": "inference"})``.
SSD512_VOC = {
    "image_size": (512, 512, 3),
    "n_classes": 20,
    "l2_regularization": 0.0005,
    "scales": [0.07, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.05],
    "aspect_ratios_per_layer": [list(ar) for ar in _ASPECT_RATIOS],
    "two_boxes_for_ar1": True,
    "steps": list(_STEPS),
    "offsets": [0.5] * 7,
    "clip_boxes": False,
    "variances": [0.1, 0.1, 0.2, 0.2],
    "normalize_coords": True,
    "subtract_mean": [123, 117, 104],
    "swap_channels": [2, 1, 0],
}
#: The MS COCO configuration: 80 classes and the smaller COCO anchor scales of the notebooks.
SSD512_COCO = {
    **SSD512_VOC,
    "n_classes": 80,
    "scales": [0.04, 0.1, 0.26, 0.42, 0.58, 0.74, 0.9, 1.06],
}


def ssd_512(
    image_size,
    n_classes,
    mode="training",
    l2_regularization=0.0005,
    min_scale=None,
    max_scale=None,
    scales=None,
    aspect_ratios_global=None,
    aspect_ratios_per_layer=_ASPECT_RATIOS,
    two_boxes_for_ar1=True,
    steps=_STEPS,
    offsets=None,
    clip_boxes=False,
    variances=(0.1, 0.1, 0.2, 0.2),
    coords="centroids",
    normalize_coords=True,
    subtract_mean=(123, 117, 104),
    divide_by_stddev=None,
    swap_channels=(2, 1, 0),
    confidence_thresh=0.01,
    iou_threshold=0.45,
    top_k=200,
    nms_max_output_size=400,
    return_predictor_sizes=False,
    backbone_weights=None,
):
    """Builds the SSD512 model of Liu et al. (2016), as the original ssd_keras ``ssd_512``.

    Reduced VGG16 (conv1_1 ... conv5_3, pool5 3x3/1, fc6 3x3 dilation 6, fc7 1x1), extra layers
    conv6_2 ... conv10_2 (stride 2 with explicit zero padding, conv10_2 a 4x4 valid conv), and
    predictors on conv4_3 (through ``conv4_3_norm``, an L2Normalization with gamma 20), fc7 and
    conv6_2 ... conv10_2. Each predictor has a
    ``<source>_mbox_conf`` and ``<source>_mbox_loc`` 3x3 conv and a ``<source>_mbox_priorbox``
    `AnchorBoxes` layer. With the VOC settings (`SSD512_VOC`) the model has 24564 anchors and
    27,188,676 parameters.

    Args:
        image_size, n_classes, mode, l2_regularization, aspect_ratios_global,
        two_boxes_for_ar1, clip_boxes, variances, coords, normalize_coords, subtract_mean,
        divide_by_stddev, swap_channels, confidence_thresh, iou_threshold, top_k,
        nms_max_output_size, return_predictor_sizes, backbone_weights: as in
            `models.keras_ssd300.ssd_300`.
        min_scale, max_scale: anchor scales ``linspace(min, max, 8)`` when ``scales`` is None.
        scales: 8 anchor scales (fractions of ``min(height, width)``), the last one only for the
            second ratio-1 box of the last predictor.
        aspect_ratios_per_layer: 7 lists of aspect ratios, one per predictor layer.
        steps: 7 anchor strides in pixels (a number or an ``(h, w)`` pair each), or None.
        offsets: 7 offsets of the first anchor centre, in steps, or None (0.5).

    Returns:
        As `models.keras_ssd300.ssd_300`, with a ``(7, 2)`` array of predictor sizes.

    Example:
        >>> model = ssd_512(**SSD512_VOC)
        >>> model.count_params()
        27188676
    """
    args = BuilderArgs.from_locals(7, locals())
    model, predictor_sizes = vgg16_ssd(args, _EXTRA_BLOCKS, "ssd_512", backbone_weights)
    return (model, predictor_sizes) if return_predictor_sizes else model
