"""SSDLite with a MobileNetV2 or MobileNetV3-Large backbone (``keras.applications``) in Keras 3.

SSDLite (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks", section
6.2) is SSD with every regular convolution outside the backbone replaced by a depthwise 3x3 and a
pointwise 1x1 convolution. The model has the output layout, modes, anchors (`AnchorBoxes`) and
decoders of SSD300, so `SSDInputEncoder`, `SSDLoss`, the `Evaluator`, weight sampling, pruning
and export take it unchanged.

Layer names (weights load by name):

- backbone: the ``keras.applications`` names (MobileNetV2 ``Conv1`` ... ``block_16_project_BN``,
  ``Conv_1``, ``out_relu``; MobileNetV3 ``conv`` ... ``expanded_conv_14_project_bn``,
  ``conv_1``; V3's weightless activations keep Keras' automatic names);
- input: ``identity_layer``, ``input_mean_normalization``, ``input_stddev_normalization``
  (and ``input_channel_swap`` if asked);
- extra feature layers ``k = 1..4``: ``extra{k}_expand`` (1x1), ``extra{k}_depthwise`` (3x3,
  stride 2), ``extra{k}_pointwise`` (1x1), each followed by ``<name>_bn`` and ``<name>_relu``
  (ReLU6); the last ReLU6 is ``extra{k}``;
- heads, per source ``s`` in ``stride16, stride32, extra1 ... extra4``:
  ``{s}_mbox_conf_depthwise`` -> ``_bn`` -> ``_relu`` -> ``{s}_mbox_conf`` (1x1), the same for
  ``{s}_mbox_loc``, and ``{s}_mbox_priorbox`` (`AnchorBoxes`); then ``mbox_conf``,
  ``mbox_loc``, ``mbox_priorbox``, ``mbox_conf_softmax``, ``predictions`` as in SSD300.
"""

from __future__ import annotations

import keras

from models.backbones import BACKBONES, load_mobilenet_weights, mobilenet_features
from models.ssd_common import (
    MBOX_CONCAT_NAMES,
    BuilderArgs,
    check_image_size,
    conv2d,
    mbox_names,
)

_ASPECT_RATIOS = tuple((1.0, 2.0, 0.5, 3.0, 1.0 / 3.0) for _ in range(6))
_SCALES = (0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 1.0)
_EXTRA_FILTERS = (512, 256, 256, 128)
SOURCE_NAMES = ("stride16", "stride32", "extra1", "extra2", "extra3", "extra4")

#: SSDLite320 with MobileNetV2 (Pascal VOC's 20 classes). The anchors are those of torchvision's
#: ``ssdlite320_mobilenet_v3_large`` (and the TF Object Detection API's SSDLite configs without
#: the reduced lowest layer): scales ``linspace(0.2, 0.95, 6)`` plus 1.0 for the last layer's
#: second ratio-1 box, ratios 1, 2, 1/2, 3, 1/3 with two ratio-1 boxes (6 per cell), steps and
#: offsets from the feature map sizes (20, 10, 5, 3, 2, 1 at 320x320): 3234 anchors. The input is
#: RGB scaled to [-1, 1], as the ImageNet MobileNets expect.
SSDLITE320_MOBILENETV2 = {
    "image_size": (320, 320, 3),
    "n_classes": 20,
    "backbone": "mobilenet_v2",
    "alpha": 1.0,
    "l2_regularization": 0.00004,
    "scales": list(_SCALES),
    "aspect_ratios_per_layer": [list(ar) for ar in _ASPECT_RATIOS],
    "two_boxes_for_ar1": True,
    "steps": None,
    "offsets": None,
    "clip_boxes": False,
    "variances": [0.1, 0.1, 0.2, 0.2],
    "normalize_coords": True,
    "subtract_mean": 127.5,
    "divide_by_stddev": 127.5,
    "swap_channels": None,
}
#: The same head and anchors on MobileNetV3-Large (the backbone of torchvision's SSDLite320).
SSDLITE320_MOBILENETV3_LARGE = {**SSDLITE320_MOBILENETV2, "backbone": "mobilenet_v3_large"}


def _bn_relu6(x, name):
    x = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x)


def _depthwise(x, name, l2_reg, strides=(1, 1)):
    return keras.layers.DepthwiseConv2D(
        (3, 3),
        strides=strides,
        padding="same",
        use_bias=False,
        depthwise_initializer="he_normal",
        depthwise_regularizer=keras.regularizers.L2(l2_reg) if l2_reg else None,
        name=name,
    )(x)


def _extra_block(x, index, filters, l2_reg):
    """1x1 (filters / 2) -> depthwise 3x3 stride 2 -> 1x1 (filters), each with BN + ReLU6."""
    name = f"extra{index}"
    x = conv2d(filters // 2, (1, 1), f"{name}_expand", l2_reg, use_bias=False)(x)
    x = _bn_relu6(x, f"{name}_expand")
    x = _depthwise(x, f"{name}_depthwise", l2_reg, strides=(2, 2))
    x = _bn_relu6(x, f"{name}_depthwise")
    x = conv2d(filters, (1, 1), f"{name}_pointwise", l2_reg, use_bias=False)(x)
    x = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{name}_pointwise_bn")(x)
    return keras.layers.ReLU(6.0, name=name)(x)


def _ssdlite_head(l2_reg):
    """The SSDLite predictor: depthwise 3x3 + BN + ReLU6, then a 1x1 convolution named ``name``."""

    def head(source, filters, name):
        x = _depthwise(source, f"{name}_depthwise", l2_reg)
        x = _bn_relu6(x, f"{name}_depthwise")
        return conv2d(filters, (1, 1), name, l2_reg, padding="same")(x)

    return head


def ssdlite(
    image_size=(320, 320, 3),
    n_classes=None,
    backbone="mobilenet_v2",
    backbone_weights=None,
    mode="training",
    alpha=1.0,
    l2_regularization=0.00004,
    min_scale=None,
    max_scale=None,
    scales=_SCALES,
    aspect_ratios_global=None,
    aspect_ratios_per_layer=_ASPECT_RATIOS,
    two_boxes_for_ar1=True,
    steps=None,
    offsets=None,
    clip_boxes=False,
    variances=(0.1, 0.1, 0.2, 0.2),
    coords="centroids",
    normalize_coords=True,
    subtract_mean=127.5,
    divide_by_stddev=127.5,
    swap_channels=None,
    confidence_thresh=0.01,
    iou_threshold=0.45,
    top_k=200,
    nms_max_output_size=400,
    return_predictor_sizes=False,
    batch_norm_momentum=0.99,
):
    """Builds SSDLite on a ``keras.applications`` MobileNet (see the module docstring for names).

    Predictors sit on the backbone's stride-16 expansion layer, its stride-32 output and four
    extra layers (stride 2 each): feature maps 20, 10, 5, 3, 2, 1 at 320x320. With
    `SSDLITE320_MOBILENETV2` (20 classes) the model has 3234 anchors.

    Args:
        image_size: ``(height, width, 3)`` of the input (each at least 32).
        n_classes: number of object classes, without the background class (required).
        backbone: ``'mobilenet_v2'`` or ``'mobilenet_v3_large'``.
        backbone_weights: None (random), ``'imagenet'`` (``keras.applications`` downloads the
            ImageNet file on first use; needs internet) or the path of a local weights file of
            that application (see `models.backbones.load_mobilenet_weights`). The ImageNet
            weights expect RGB in ``[-1, 1]``: keep ``subtract_mean=127.5,
            divide_by_stddev=127.5, swap_channels=None``.
        mode: ``'training'``, ``'inference'`` (`DecodeDetections`) or ``'inference_fast'``
            (`DecodeDetectionsFast`).
        alpha: the backbone's width multiplier; the extra layers are scaled alike (at least 16
            filters).
        l2_regularization: L2 weight decay of the extra layers' and heads' kernels (the
            backbone has none, as in ``keras.applications``).
        min_scale, max_scale, scales, aspect_ratios_global, aspect_ratios_per_layer,
        two_boxes_for_ar1, steps, offsets, clip_boxes, variances, coords, normalize_coords:
            the anchors, as in `ssd_300` (6 predictor layers, 7 scales). ``steps``/``offsets``
            None: image size / feature map size and half a step.
        subtract_mean, divide_by_stddev, swap_channels: input preprocessing (see above).
        confidence_thresh, iou_threshold, top_k, nms_max_output_size: decoder settings of the
            inference modes.
        return_predictor_sizes: also return the predictor feature map sizes.
        batch_norm_momentum: momentum of the moving averages of every BatchNormalization,
            the backbone's included. ``keras.applications`` uses 0.999, made for long ImageNet
            runs: after a few hundred steps from scratch its moving statistics are still far from
            the data's, and the inference-mode model detects nothing (BCCD, 8 epochs: training
            loss falling, mAP 0.001-0.007).

    Returns:
        The `keras.Model` (and, with ``return_predictor_sizes``, the ``(6, 2)`` numpy array of
        ``(fh, fw)``). Input ``(batch, height, width, 3)`` with pixel values in [0, 255]; output
        in training mode ``(batch, n_anchors, n_classes + 1 + 12)`` = softmax class scores | 4
        offsets | 4 anchor coords | 4 variances; in the inference modes ``(batch, top_k, 6)`` =
        ``[class_id, confidence, xmin, ymin, xmax, ymax]`` in pixels.

    Example:
        >>> model, sizes = ssdlite(**SSDLITE320_MOBILENETV2, return_predictor_sizes=True)
        >>> sizes.tolist()
        [[20, 20], [10, 10], [5, 5], [3, 3], [2, 2], [1, 1]]
    """
    if n_classes is None:
        raise ValueError("n_classes is required (object classes without the background)")
    img_height, img_width, img_channels = check_image_size(image_size)
    if img_channels != 3 or min(img_height, img_width) < 32:
        raise ValueError(
            f"image_size must be (height, width, 3) with height, width >= 32 for the "
            f"MobileNet backbone, got {image_size!r}"
        )
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {list(BACKBONES)}, got {backbone!r}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    args = BuilderArgs.from_locals(6, locals())
    inputs, x = args.preprocessed_input()
    stride16, stride32 = mobilenet_features(x, backbone, float(alpha))
    sources = [stride16, stride32]
    x = stride32
    for index, filters in enumerate(_EXTRA_FILTERS, start=1):
        x = _extra_block(x, index, max(16, int(filters * alpha)), l2_regularization)
        sources.append(x)

    model, predictor_sizes = args.model(
        inputs,
        sources,
        mbox_names(SOURCE_NAMES),
        MBOX_CONCAT_NAMES,
        name=f"ssdlite_{backbone}",
        head=_ssdlite_head(l2_regularization),
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(batch_norm_momentum)
    if backbone_weights is not None:
        load_mobilenet_weights(model, backbone, float(alpha), backbone_weights)
    return (model, predictor_sizes) if return_predictor_sizes else model
