"""ImageNet-initialised backbones from `keras.applications`, without the original's weight links.

- **VGG16 -> the reduced VGG16 of SSD300/SSD512.** The SSD authors made
  ``VGG_ILSVRC_16_layers_fc_reduced`` from the ImageNet VGG16 by copying ``conv1_1`` ...
  ``conv5_3`` and sub-sampling the two fully connected layers into convolutions:
  ``fc6`` = the ``25088 x 4096`` dense kernel viewed as ``(7, 7, 512, 4096)`` (the flattened
  ``pool5`` map), every 4th output filter kept (1024) and every 3rd spatial position (3x3, used
  with dilation 6); ``fc7`` = every 4th input and output of the ``4096 x 4096`` kernel (a 1x1
  convolution, 1024 x 1024); the biases sub-sampled alike. `vgg16_fc_reduced` does exactly that
  to the weights of ``keras.applications.VGG16(include_top=True)``.
- **MobileNetV2 / MobileNetV3-Large** for SSDLite: the application's own layers, weights copied
  by layer name.

Preprocessing the weights expect (the builders' defaults match it):

- VGG16 (``'caffe'`` mode of ``keras.applications``): BGR, minus the ImageNet mean
  ``(103.939, 116.779, 123.68)`` (B, G, R). SSD300/SSD512 subtract ``(123, 117, 104)`` from the
  RGB input and then swap to BGR (``swap_channels=[2, 1, 0]``): the same to within 0.7 of 255.
- MobileNetV2 / V3 (``'tf'`` mode): RGB scaled to ``[-1, 1]``, i.e. ``(x - 127.5) / 127.5``:
  SSDLite's ``subtract_mean=127.5, divide_by_stddev=127.5``. (Keras' MobileNetV3 has this
  rescaling built in; SSDLite builds it with ``include_preprocessing=False`` and does it in its
  own input layers, so both backbones read the same input.)

``backbone_weights='imagenet'`` downloads the application's ImageNet file from the Keras
servers on first use (cached in ``~/.keras/models``); a path loads a local file instead.
"""

from __future__ import annotations

import keras
import numpy as np

#: keras.applications VGG16 layer -> reduced-VGG16 layer of SSD300/SSD512.
VGG16_CONV_LAYERS = {
    f"block{block}_conv{i}": f"conv{block}_{i}"
    for block, n_convs in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
    for i in range(1, n_convs + 1)
}

BACKBONES = ("mobilenet_v2", "mobilenet_v3_large")


def vgg16_fc_reduced(vgg16_weights: dict) -> dict:
    """The reduced VGG16 (SSD's ``fc_reduced`` base) from the ImageNet VGG16's weights.

    Args:
        vgg16_weights: ``{layer name: [kernel, bias]}`` of ``keras.applications.VGG16(
            include_top=True)``: ``block1_conv1`` ... ``block5_conv3``, ``fc1`` (kernel
            ``(25088, 4096)``) and ``fc2`` (``(4096, 4096)``).

    Returns:
        ``{layer name: [kernel, bias]}`` for SSD300/SSD512's ``conv1_1`` ... ``conv5_3`` (copied),
        ``fc6`` (kernel ``(3, 3, 512, 1024)``: ``fc1[(7 * 7 * 512 flattened)][::4]`` at rows and
        columns 0, 3, 6 of the 7x7 grid) and ``fc7`` (``(1, 1, 1024, 1024)``:
        ``fc2[::4, ::4]``); biases ``fc1_bias[::4]`` and ``fc2_bias[::4]``.
    """
    missing = [name for name in [*VGG16_CONV_LAYERS, "fc1", "fc2"] if name not in vgg16_weights]
    if missing:
        raise ValueError(
            f"VGG16 weights: missing layer(s) {missing}; fc1/fc2 come only with "
            "keras.applications.VGG16(include_top=True)"
        )
    reduced = {
        ssd_name: [np.array(w) for w in vgg16_weights[vgg_name]]
        for vgg_name, ssd_name in VGG16_CONV_LAYERS.items()
    }
    fc1_kernel, fc1_bias = (np.asarray(w) for w in vgg16_weights["fc1"])
    fc2_kernel, fc2_bias = (np.asarray(w) for w in vgg16_weights["fc2"])
    if fc1_kernel.shape != (7 * 7 * 512, 4096) or fc2_kernel.shape != (4096, 4096):
        raise ValueError(
            f"VGG16 weights: fc1 kernel {fc1_kernel.shape} / fc2 kernel {fc2_kernel.shape}, "
            "expected (25088, 4096) / (4096, 4096) (a 224x224 VGG16 with its top)"
        )
    # Keras flattens pool5 (7, 7, 512) in row, column, channel order.
    fc6 = fc1_kernel.reshape(7, 7, 512, 4096)[::3, ::3, :, ::4]  # (3, 3, 512, 1024)
    reduced["fc6"] = [np.ascontiguousarray(fc6), fc1_bias[::4].copy()]
    fc7 = fc2_kernel[::4, ::4].reshape(1, 1, 1024, 1024)
    reduced["fc7"] = [np.ascontiguousarray(fc7), fc2_bias[::4].copy()]
    return reduced


def _check_weights_arg(backbone_weights) -> None:
    from pathlib import Path

    if backbone_weights == "imagenet":
        return
    if not isinstance(backbone_weights, (str, Path)):
        raise ValueError(
            f"backbone_weights must be None, 'imagenet' or the path of a weights file, got "
            f"{backbone_weights!r}"
        )
    if not Path(backbone_weights).is_file():
        raise FileNotFoundError(f"backbone_weights: no such file: {backbone_weights}")


def load_vgg16_fc_reduced(model: keras.Model, backbone_weights) -> list[str]:
    """Sets SSD300/SSD512's ``conv1_1`` ... ``fc7`` from ImageNet VGG16 weights.

    Args:
        model: an SSD300 or SSD512 model (layers named as the original).
        backbone_weights: ``'imagenet'`` (``keras.applications`` downloads the file when
            online) or the path of a file written by ``keras.applications.VGG16(
            include_top=True).save_weights(...)`` (it must hold ``fc1``/``fc2``).

    Returns:
        The names of the layers set.
    """
    _check_weights_arg(backbone_weights)
    vgg16 = keras.applications.VGG16(include_top=True, weights=str(backbone_weights))
    names = [*VGG16_CONV_LAYERS, "fc1", "fc2"]
    reduced = vgg16_fc_reduced({name: vgg16.get_layer(name).get_weights() for name in names})
    del vgg16
    for name, weights in reduced.items():
        model.get_layer(name).set_weights(weights)
    return list(reduced)


def _application(backbone: str):
    if backbone == "mobilenet_v2":
        return keras.applications.MobileNetV2, {}
    if backbone == "mobilenet_v3_large":
        return keras.applications.MobileNetV3Large, {"include_preprocessing": False}
    raise ValueError(f"backbone must be one of {list(BACKBONES)}, got {backbone!r}")


def mobilenet_features(x, backbone: str, alpha: float):
    """Builds ``keras.applications``' MobileNet on ``x``; returns its SSDLite source maps.

    The application's layers join the caller's graph under their own names (``Conv1``,
    ``block_13_expand``, ... for V2; ``conv``, ``expanded_conv_12_expand``, ... for V3), so the
    SSDLite model is flat and weights load by name. Layers without weights that the application
    leaves unnamed (V3's activations) get Keras' automatic names.

    Args:
        x: the preprocessed input ``(batch, height, width, 3)`` scaled to ``[-1, 1]``.
        backbone: ``'mobilenet_v2'`` or ``'mobilenet_v3_large'``.
        alpha: the width multiplier.

    Returns:
        ``(stride16, stride32)``: the expansion of the first stride-32 block (before its
        depthwise convolution; ``block_13_expand_relu`` of V2, 576 channels at alpha 1; the
        activation of ``expanded_conv_12_expand`` of V3, 672 channels) and the last feature map
        (V2 ``out_relu``, 1280 channels; V3 the activation of ``conv_1``, 960 channels), as in
        Sandler et al. (2018) and Howard et al. (2019).
    """
    application, extra = _application(backbone)
    height, width = x.shape[1], x.shape[2]
    net = application(
        input_tensor=x,
        input_shape=(height, width, 3),
        include_top=False,
        weights=None,
        alpha=alpha,
        **extra,
    )
    if backbone == "mobilenet_v2":
        return net.get_layer("block_13_expand_relu").output, net.output
    return net.get_layer("expanded_conv_12_depthwise_pad").input, net.output


def load_mobilenet_weights(model: keras.Model, backbone: str, alpha: float, backbone_weights):
    """Copies a ``keras.applications`` MobileNet's weights into an SSDLite model by layer name.

    Args:
        model: the SSDLite model (built with the same ``backbone`` and ``alpha``).
        backbone, alpha: as in the builder.
        backbone_weights: ``'imagenet'`` (downloaded by ``keras.applications`` when online;
            alpha 0.35, 0.5, 0.75, 1.0, 1.3, 1.4 for V2, 0.75 and 1.0 for V3) or the path of a
            weights file of that application, with or without its top (e.g. written by
            ``keras.applications.MobileNetV2(include_top=False, alpha=...).save_weights(...)``).

    Returns:
        The names of the layers set.
    """
    _check_weights_arg(backbone_weights)
    application, extra = _application(backbone)
    if backbone_weights == "imagenet":
        source = application(include_top=False, weights="imagenet", alpha=alpha, **extra)
    else:
        source = None
        errors = []
        for include_top in (False, True):
            try:
                source = application(
                    input_shape=(224, 224, 3),
                    include_top=include_top,
                    weights=str(backbone_weights),
                    alpha=alpha,
                    **extra,
                )
                break
            except (ValueError, KeyError) as error:
                errors.append(f"include_top={include_top}: {error}")
        if source is None:
            raise ValueError(
                f"backbone_weights {backbone_weights}: not a weights file of "
                f"keras.applications {application.__name__}(alpha={alpha}) ({'; '.join(errors)})"
            )
    names = []
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        try:
            target = model.get_layer(layer.name)
        except ValueError:
            continue  # the application's classifier (include_top=True files)
        if len(target.weights) != len(weights):
            continue  # V2's classifier is named "predictions", like SSD's output concatenation
        target.set_weights(weights)
        names.append(layer.name)
    return names
