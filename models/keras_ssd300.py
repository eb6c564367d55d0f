"""SSD300 (reduced VGG16 base) in Keras 3, with the original ssd_keras API and layer names."""

from __future__ import annotations

from models.ssd_common import BuilderArgs, vgg16_ssd

_ASPECT_RATIOS = (
    (1.0, 2.0, 0.5),
    (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0),
    (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0),
    (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0),
    (1.0, 2.0, 0.5),
    (1.0, 2.0, 0.5),
)
_STEPS = (8, 16, 32, 64, 100, 300)
# conv6_2 ... conv9_2 (`models.ssd_common.extra_block`): 19 -> 10 -> 5 -> 3 -> 1 at 300x300.
_EXTRA_BLOCKS = (
    {"index": 6, "filters_1": 256, "filters_2": 512, "pad": True},
    {"index": 7, "filters_1": 128, "filters_2": 256, "pad": True},
    {"index": 8, "filters_1": 128, "filters_2": 256, "pad": False, "strides": (1, 1)},
    {"index": 9, "filters_1": 128, "filters_2": 256, "pad": False, "strides": (1, 1)},
)

#: The original SSD300 Pascal VOC configuration (ssd300_training / ssd300_inference notebooks).
#: Use as ``ssd_300(**SSD300_VOC)``; override entries with
#: ``ssd_300(**{**SSD300_VOC, "mode": "inference"})``.
SSD300_VOC = {
    "image_size": (300, 300, 3),
    "n_classes": 20,
    "l2_regularization": 0.0005,
    "scales": [0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05],
    "aspect_ratios_per_layer": [list(ar) for ar in _ASPECT_RATIOS],
    "two_boxes_for_ar1": True,
    "steps": list(_STEPS),
    "offsets": [0.5] * 6,
    "clip_boxes": False,
    "variances": [0.1, 0.1, 0.2, 0.2],
    "normalize_coords": True,
    "subtract_mean": [123, 117, 104],
    "swap_channels": [2, 1, 0],
}
#: The MS COCO configuration: 80 classes and the smaller COCO anchor scales of the notebooks.
SSD300_COCO = {**SSD300_VOC, "n_classes": 80, "scales": [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]}


def ssd_300(
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
    """Builds the SSD300 model of Liu et al. (2016), as the original ssd_keras ``ssd_300``.

    Reduced VGG16 (conv1_1 ... conv5_3, pool5 3x3/1, fc6 3x3 dilation 6, fc7 1x1), extra layers
    conv6_2 ... conv9_2, and predictors on conv4_3 (through ``conv4_3_norm``, an L2Normalization
    with gamma 20), fc7, conv6_2, conv7_2, conv8_2 and conv9_2. Each predictor has a
    ``<source>_mbox_conf`` and ``<source>_mbox_loc`` 3x3 conv and a ``<source>_mbox_priorbox``
    `AnchorBoxes` layer. With the VOC settings (`SSD300_VOC`) the model has 8732 anchors and
    26,285,486 parameters.

    Args:
        image_size: ``(height, width, channels)`` of the input.
        n_classes: number of object classes, without the background class (20 for VOC).
        mode: ``'training'`` (raw predictions), ``'inference'`` (adds `DecodeDetections`) or
            ``'inference_fast'`` (adds `DecodeDetectionsFast`).
        l2_regularization: L2 weight decay on all convolution kernels.
        min_scale, max_scale: anchor scales ``linspace(min, max, 7)`` when ``scales`` is None.
        scales: 7 anchor scales (fractions of ``min(height, width)``), the last one only for the
            second ratio-1 box of the last predictor.
        aspect_ratios_global: aspect ratios of every predictor layer (if ``_per_layer`` is None).
        aspect_ratios_per_layer: 6 lists of aspect ratios, one per predictor layer.
        two_boxes_for_ar1: whether aspect ratio 1 gets a second, larger box.
        steps: 6 anchor strides in pixels (a number or an ``(h, w)`` pair each), or None.
        offsets: 6 offsets of the first anchor centre, in steps, or None (0.5).
        clip_boxes: clip the anchors to the image.
        variances: 4 positive numbers that divide the encoded offsets.
        coords: box format of the model's anchors: ``'centroids'``, ``'minmax'`` or ``'corners'``.
        normalize_coords: anchors relative to the image size instead of in pixels.
        subtract_mean: a number or per-channel list subtracted from the input, or None.
        divide_by_stddev: a number or per-channel list dividing the input, or None.
        swap_channels: a channel permutation applied to the input (``[2, 1, 0]``: RGB -> BGR for
            the ported Caffe weights), or None / False.
        confidence_thresh, iou_threshold, top_k, nms_max_output_size: decoder settings for the
            inference modes.
        return_predictor_sizes: also return the predictor feature-map sizes (for
            `SSDInputEncoder`).
        backbone_weights: None (random initialisation), ``'imagenet'`` or the path of a
            ``keras.applications.VGG16(include_top=True)`` weights file: ``conv1_1`` ...
            ``fc7`` are set from the ImageNet VGG16 the way the SSD authors made
            ``VGG_ILSVRC_16_layers_fc_reduced`` (`models.backbones.vgg16_fc_reduced`).
            ``'imagenet'`` makes ``keras.applications`` download the file on first use (needs
            internet). The weights expect Caffe preprocessing (BGR minus the ImageNet mean),
            which the default ``subtract_mean``/``swap_channels`` give.

    Returns:
        The `keras.Model` (and, with ``return_predictor_sizes``, a ``(6, 2)`` numpy array of
        ``(fh, fw)``). Input ``(batch, height, width, channels)`` with pixel values; output in
        training mode ``(batch, n_anchors, n_classes + 1 + 12)`` = softmax class scores | 4
        offsets | 4 anchor coords | 4 variances; in the inference modes ``(batch, top_k, 6)`` =
        ``[class_id, confidence, xmin, ymin, xmax, ymax]`` in pixels.

    Example:
        >>> model = ssd_300(**SSD300_VOC)
        >>> model.count_params()
        26285486
    """
    args = BuilderArgs.from_locals(6, locals())
    model, predictor_sizes = vgg16_ssd(args, _EXTRA_BLOCKS, "ssd_300", backbone_weights)
    return (model, predictor_sizes) if return_predictor_sizes else model
