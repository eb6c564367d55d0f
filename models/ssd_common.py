"""Pieces shared by the SSD300, SSD512, SSD7 and SSDLite builders: the arguments they all take
(`BuilderArgs`: checks, anchors, preprocessed input, output stage and decoder), the reduced VGG16
base with its extra layers, the predictor heads and the output stage.

Anchor parameters (scales, aspect ratios, boxes per cell, steps, offsets) come from
`ssd_encoder_decoder.anchor_boxes.resolve_anchor_config`, the same function the input encoder uses,
so the model's heads and the encoder cannot disagree about the number of anchors.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_layers import AnchorBoxes, L2Normalization
from models.input_preprocessing import add_input_preprocessing
from ssd_encoder_decoder.anchor_boxes import PredictorLayerAnchors, resolve_anchor_config

MODES = ("training", "inference", "inference_fast")
#: Layer names of the output stage of SSD300, SSD512 and SSDLite: the class, box and anchor
#: concatenations and the softmax (see `ssd_outputs`).
MBOX_CONCAT_NAMES = ("mbox_conf", "mbox_loc", "mbox_priorbox", "mbox_conf_softmax")


def check_image_size(image_size) -> tuple[int, int, int]:
    """``(height, width, channels)`` as ints; ValueError otherwise."""
    try:
        height, width, channels = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(
            f"image_size must be (height, width, channels), got {image_size!r}"
        ) from None
    if min(height, width, channels) <= 0:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return height, width, channels


def check_common_args(n_classes, mode, l2_regularization, variances) -> None:
    """ValueErrors naming the argument, for the arguments every builder shares."""
    if int(n_classes) != n_classes or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if l2_regularization is None or l2_regularization < 0:
        raise ValueError(f"l2_regularization must be >= 0, got {l2_regularization!r}")
    variances = np.asarray(variances, dtype=np.float64)
    if variances.shape != (4,) or np.any(variances <= 0):
        raise ValueError(f"variances must be 4 positive numbers, got {variances.tolist()!r}")


def anchor_layers(
    n_predictor_layers,
    min_scale,
    max_scale,
    scales,
    aspect_ratios_global,
    aspect_ratios_per_layer,
    two_boxes_for_ar1,
    steps,
    offsets,
) -> list[PredictorLayerAnchors]:
    """Per-predictor-layer anchor parameters (see `resolve_anchor_config`)."""
    return resolve_anchor_config(
        n_predictor_layers,
        min_scale=min_scale,
        max_scale=max_scale,
        scales=scales,
        aspect_ratios_global=aspect_ratios_global,
        aspect_ratios_per_layer=aspect_ratios_per_layer,
        two_boxes_for_ar1=two_boxes_for_ar1,
        steps=steps,
        offsets=offsets,
    )


def conv2d(filters, kernel_size, name, l2_reg, **kwargs) -> keras.layers.Conv2D:
    """A Conv2D as the original builds them: he_normal kernels, L2 weight decay on the kernel."""
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        kernel_initializer="he_normal",
        kernel_regularizer=keras.regularizers.L2(l2_reg) if l2_reg else None,
        name=name,
        **kwargs,
    )


def vgg16_base(x, l2_reg):
    """The reduced VGG16 of SSD300/SSD512, up to fc7.

    Pools use ``'same'`` padding (Caffe's ceil mode), so a 300x300 input gives a 38x38 conv4_3;
    pool5 is 3x3 with stride 1 and fc6 is a 3x3 convolution with dilation 6, as in the
    ``fc_reduced`` weights.

    Args:
        x: preprocessed input ``(batch, height, width, channels)``.
        l2_reg: L2 weight decay of the kernels.

    Returns:
        ``(conv4_3, fc7)`` tensors: ``(batch, ceil(h/8), ceil(w/8), 512)`` and
        ``(batch, ceil(h/16), ceil(w/16), 1024)``.
    """
    blocks = [(1, 64, 2), (2, 128, 2), (3, 256, 3), (4, 512, 3), (5, 512, 3)]
    conv4_3 = None
    for block, filters, n_convs in blocks:
        for i in range(1, n_convs + 1):
            x = conv2d(
                filters, (3, 3), f"conv{block}_{i}", l2_reg, activation="relu", padding="same"
            )(x)
        if block == 4:
            conv4_3 = x
        if block < 5:
            x = keras.layers.MaxPooling2D(
                pool_size=(2, 2), strides=(2, 2), padding="same", name=f"pool{block}"
            )(x)
    x = keras.layers.MaxPooling2D(pool_size=(3, 3), strides=(1, 1), padding="same", name="pool5")(x)
    x = conv2d(
        1024, (3, 3), "fc6", l2_reg, dilation_rate=(6, 6), activation="relu", padding="same"
    )(x)
    fc7 = conv2d(1024, (1, 1), "fc7", l2_reg, activation="relu", padding="same")(x)
    return conv4_3, fc7


def vgg16_ssd(args, extra_blocks, name, backbone_weights):
    """SSD300/SSD512 without their arguments: the reduced VGG16, extra layers, heads on conv4_3
    (through ``conv4_3_norm``, an L2Normalization with gamma 20), fc7 and the extra layers.

    Args:
        args: the builder's `BuilderArgs`.
        extra_blocks: one dict of `extra_block` keyword arguments (besides ``x`` and ``l2_reg``)
            per extra layer, in order; each takes the previous one's output.
        name: the model's name.
        backbone_weights: None, ``'imagenet'`` or a VGG16 weights file
            (`models.backbones.load_vgg16_fc_reduced`).

    Returns:
        ``(model, predictor_sizes)`` as `BuilderArgs.model`.
    """
    inputs, x = args.preprocessed_input()
    conv4_3, fc7 = vgg16_base(x, args.l2_regularization)
    extras = [fc7]
    for block in extra_blocks:
        extras.append(extra_block(extras[-1], l2_reg=args.l2_regularization, **block))
    # Created after the extra layers, as in the original.
    conv4_3_norm = L2Normalization(gamma_init=20, name="conv4_3_norm")(conv4_3)
    source_names = ["conv4_3_norm", "fc7"] + [f"conv{block['index']}_2" for block in extra_blocks]
    model, predictor_sizes = args.model(
        inputs, [conv4_3_norm, *extras], mbox_names(source_names), MBOX_CONCAT_NAMES, name=name
    )
    if backbone_weights is not None:
        from models.backbones import load_vgg16_fc_reduced

        load_vgg16_fc_reduced(model, backbone_weights)
    return model, predictor_sizes


def mbox_names(source_names):
    """``(conf, loc, anchors)`` layer names per predictor source: ``<source>_mbox_conf``,
    ``<source>_mbox_loc``, ``<source>_mbox_priorbox`` (SSD300, SSD512, SSDLite)."""
    return [(f"{s}_mbox_conf", f"{s}_mbox_loc", f"{s}_mbox_priorbox") for s in source_names]


def extra_block(x, index, filters_1, filters_2, l2_reg, pad, strides=(2, 2), kernel_size=(3, 3)):
    """One SSD extra feature layer: 1x1 conv, optional explicit zero padding, 3x3 conv.

    Names follow the original: ``conv{index}_1``, ``conv{index}_padding``, ``conv{index}_2``.
    """
    x = conv2d(filters_1, (1, 1), f"conv{index}_1", l2_reg, activation="relu", padding="same")(x)
    if pad:
        x = keras.layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name=f"conv{index}_padding")(x)
    return conv2d(
        filters_2,
        kernel_size,
        f"conv{index}_2",
        l2_reg,
        strides=strides,
        activation="relu",
        padding="valid",
    )(x)


def ssd_outputs(
    sources,
    layers,
    head_names,
    concat_names,
    n_classes,
    img_height,
    img_width,
    l2_reg,
    clip_boxes,
    variances,
    coords,
    normalize_coords,
    head=None,
):
    """Predictor heads, anchors and the training-mode output tensor.

    Args:
        sources: feature maps ``(batch, fh_i, fw_i, c_i)`` that carry predictors.
        layers: one `PredictorLayerAnchors` per source.
        head_names: per source ``(conf name, loc name, anchors name)``.
        concat_names: ``(conf concat, loc concat, anchors concat, softmax)`` layer names.
        n_classes: number of object classes (without background).
        head: ``head(source, filters, name) -> tensor``, the predictor head; None: one 3x3
            convolution named ``name`` (SSD300/SSD512). The last layer of a head carries
            ``name`` (weights load by name, weight sampling finds ``*_mbox_conf``).
        Other arguments: as in the builders.

    Returns:
        ``(predictions, predictor_sizes)``: ``(batch, n_anchors, n_classes + 1 + 12)`` =
        softmax | 4 offsets | 4 anchors | 4 variances, and the ``(n_sources, 2)`` numpy array of
        feature-map sizes.
    """
    n_scores = n_classes + 1
    if head is None:

        def head(source, filters, name):
            return conv2d(filters, (3, 3), name, l2_reg, padding="same")(source)

    confs, locs, anchors = [], [], []
    # Layer creation order follows the original: all conf heads, then loc heads, then anchors.
    for source, layer, (conf_name, _, _) in zip(sources, layers, head_names):
        confs.append(head(source, layer.n_boxes * n_scores, conf_name))
    for source, layer, (_, loc_name, _) in zip(sources, layers, head_names):
        locs.append(head(source, layer.n_boxes * 4, loc_name))
    for loc, layer, (_, _, anchor_name) in zip(locs, layers, head_names):
        anchors.append(
            AnchorBoxes(
                img_height,
                img_width,
                this_scale=layer.this_scale,
                next_scale=layer.next_scale,
                aspect_ratios=list(layer.aspect_ratios),
                two_boxes_for_ar1=layer.two_boxes_for_ar1,
                this_steps=layer.this_steps,
                this_offsets=layer.this_offsets,
                clip_boxes=clip_boxes,
                variances=list(variances),
                coords=coords,
                normalize_coords=normalize_coords,
                name=anchor_name,
                dtype="float32",
            )(loc)
        )
    confs = [
        keras.layers.Reshape((-1, n_scores), name=f"{names[0]}_reshape")(t)
        for t, names in zip(confs, head_names)
    ]
    locs = [
        keras.layers.Reshape((-1, 4), name=f"{names[1]}_reshape")(t)
        for t, names in zip(locs, head_names)
    ]
    anchors = [
        keras.layers.Reshape((-1, 8), name=f"{names[2]}_reshape", dtype="float32")(t)
        for t, names in zip(anchors, head_names)
    ]
    conf_name, loc_name, anchor_name, softmax_name = concat_names
    # From here on float32 even under a mixed-precision policy: the anchors need float32's
    # resolution, and the softmax and the loss its range.
    conf = keras.layers.Concatenate(axis=1, name=conf_name, dtype="float32")(confs)
    loc = keras.layers.Concatenate(axis=1, name=loc_name, dtype="float32")(locs)
    anchor = keras.layers.Concatenate(axis=1, name=anchor_name, dtype="float32")(anchors)
    conf = keras.layers.Activation("softmax", name=softmax_name, dtype="float32")(conf)
    predictions = keras.layers.Concatenate(axis=2, name="predictions", dtype="float32")(
        [conf, loc, anchor]
    )
    predictor_sizes = np.array([tuple(s.shape[1:3]) for s in sources], dtype=np.int64)
    return predictions, predictor_sizes


def decode_outputs(
    predictions,
    mode,
    confidence_thresh,
    iou_threshold,
    top_k,
    nms_max_output_size,
    coords,
    normalize_coords,
    img_height,
    img_width,
):
    """The model output for ``mode``: the raw predictions, or the decoded ``(batch, top_k, 6)``."""
    if mode == "training":
        return predictions
    # Imported here so that training-mode models need only AnchorBoxes and L2Normalization.
    from keras_layers.keras_layer_DecodeDetections import DecodeDetections
    from keras_layers.keras_layer_DecodeDetectionsFast import DecodeDetectionsFast

    decoder = DecodeDetections if mode == "inference" else DecodeDetectionsFast
    return decoder(
        confidence_thresh=confidence_thresh,
        iou_threshold=iou_threshold,
        top_k=top_k,
        nms_max_output_size=nms_max_output_size,
        coords=coords,
        normalize_coords=normalize_coords,
        img_height=img_height,
        img_width=img_width,
        name="decoded_predictions",
    )(predictions)


@dataclasses.dataclass
class BuilderArgs:
    """The keyword arguments every SSD builder takes, checked, and the steps that use them.

    The fields mean what `models.keras_ssd300.ssd_300` documents. A builder makes one with
    `from_locals` from its own arguments, then calls `preprocessed_input`, builds its feature
    maps, and hands them to `model` (heads, anchors, output stage and decoder). Checking happens
    on creation, in the original order: ``image_size``, the common arguments, then the anchors.
    """

    n_predictor_layers: int
    image_size: tuple
    n_classes: int
    mode: str
    l2_regularization: float
    min_scale: float | None
    max_scale: float | None
    scales: object
    aspect_ratios_global: object
    aspect_ratios_per_layer: object
    two_boxes_for_ar1: bool
    steps: object
    offsets: object
    clip_boxes: bool
    variances: object
    coords: str
    normalize_coords: bool
    subtract_mean: object
    divide_by_stddev: object
    swap_channels: object
    confidence_thresh: float
    iou_threshold: float
    top_k: int
    nms_max_output_size: int
    # Derived on creation: the checked input size and one `PredictorLayerAnchors` per layer.
    img_height: int = dataclasses.field(init=False)
    img_width: int = dataclasses.field(init=False)
    img_channels: int = dataclasses.field(init=False)
    layers: list = dataclasses.field(init=False)

    def __post_init__(self):
        self.img_height, self.img_width, self.img_channels = check_image_size(self.image_size)
        check_common_args(self.n_classes, self.mode, self.l2_regularization, self.variances)
        self.layers = anchor_layers(
            self.n_predictor_layers,
            self.min_scale,
            self.max_scale,
            self.scales,
            self.aspect_ratios_global,
            self.aspect_ratios_per_layer,
            self.two_boxes_for_ar1,
            self.steps,
            self.offsets,
        )

    @classmethod
    def from_locals(cls, n_predictor_layers, arguments) -> BuilderArgs:
        """The shared arguments out of a builder's ``locals()`` (its own keyword arguments)."""
        names = [
            f.name for f in dataclasses.fields(cls) if f.init and f.name != "n_predictor_layers"
        ]
        return cls(n_predictor_layers, **{name: arguments[name] for name in names})

    def preprocessed_input(self):
        """``(inputs, x)``: the model's `keras.Input` and it after `add_input_preprocessing`."""
        inputs = keras.Input(shape=(self.img_height, self.img_width, self.img_channels))
        x = add_input_preprocessing(
            inputs, self.subtract_mean, self.divide_by_stddev, self.swap_channels
        )
        return inputs, x

    def model(self, inputs, sources, head_names, concat_names, name, head=None):
        """The `keras.Model` from ``inputs`` to the output of ``mode``, and the predictor sizes.

        Args:
            inputs: from `preprocessed_input`.
            sources, head_names, concat_names, head: as in `ssd_outputs`.
            name: the model's name.

        Returns:
            ``(model, predictor_sizes)``; ``predictor_sizes`` is the ``(n_sources, 2)`` numpy
            array of feature-map sizes.
        """
        predictions, predictor_sizes = ssd_outputs(
            sources,
            self.layers,
            head_names,
            concat_names,
            int(self.n_classes),
            self.img_height,
            self.img_width,
            self.l2_regularization,
            self.clip_boxes,
            self.variances,
            self.coords,
            self.normalize_coords,
            head=head,
        )
        outputs = decode_outputs(
            predictions,
            self.mode,
            self.confidence_thresh,
            self.iou_threshold,
            self.top_k,
            self.nms_max_output_size,
            self.coords,
            self.normalize_coords,
            self.img_height,
            self.img_width,
        )
        return keras.Model(inputs=inputs, outputs=outputs, name=name), predictor_sizes
