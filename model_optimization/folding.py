"""BatchNormalization folded into the convolution before it: the inference form of a model.

At inference a BatchNormalization is an affine map per channel, ``y = x * s + t`` with
``s = gamma / sqrt(moving_variance + epsilon)`` and ``t = beta - moving_mean * s``. When it
reads a Conv2D or DepthwiseConv2D without activation whose output nothing else reads, the
map moves into the convolution (kernel times ``s`` per output channel, bias ``b * s + t``) and
the BatchNormalization layer leaves the graph. The outputs are the same up to float rounding;
TensorFlow then runs one fused convolution (+ bias + activation) instead of a convolution,
a batch normalisation and an activation: SSDLite-MobileNetV2 (76 BatchNormalizations) runs
about 1.5x faster at batch 1 on this project's 2-core CPU (README, "Runtimes").

The folded model is for inference only (training it would train the folded kernels without
batch statistics). `ssd_keras.predict.load_model` folds the models that ``predict`` and
``evaluate`` run; the LiteRT, ONNX and OpenVINO converters fold by themselves.
"""

from __future__ import annotations

import keras
import numpy as np

from model_optimization.pruning import _check_graph_model
from model_optimization.structured import _Graph

_FOLDABLE = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def foldable_pairs(model: keras.Model) -> dict[str, str]:
    """``{batch_norm_name: conv_name}`` for every BatchNormalization of ``model`` that can be
    folded: over the last axis, called once, not a model output, and reading a Conv2D or
    DepthwiseConv2D (channels last, no activation, called once, read by nothing else)."""
    graph = _Graph(model)
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        if layer.name in graph.shared or layer.name in graph.outputs:
            continue
        if layer.axis not in (-1, len(layer.input.shape) - 1):
            continue
        parents = layer._inbound_nodes[0].parent_nodes
        conv = parents[0].operation if len(parents) == 1 else None
        if (
            type(conv) in _FOLDABLE
            and conv.data_format == "channels_last"
            and conv.get_config()["activation"] == "linear"
            and conv.name not in graph.shared
            and conv.name not in graph.outputs
            and [c.name for c in graph.consumers.get(conv.name, [])] == [layer.name]
        ):
            pairs[layer.name] = conv.name
    return pairs


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """``model`` with its foldable BatchNormalizations (`foldable_pairs`) folded into the
    convolutions before them; every other layer keeps its name, config and weights. Returns
    ``model`` itself when nothing folds (SSD300/SSD512 have no BatchNormalization); a
    Sequential model that folds comes back as a functional one.
    """
    _check_graph_model(model, "fold_batch_norm")
    pairs = foldable_pairs(model)
    if not pairs:
        return model
    if isinstance(model, keras.Sequential):  # its config lists no graph to rewire
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    convs = {conv: bn for bn, conv in pairs.items()}
    config = model.get_config()
    config["layers"] = [layer for layer in config["layers"] if layer["name"] not in pairs]
    for layer in config["layers"]:
        if layer["name"] in convs:
            layer["config"]["use_bias"] = True
        layer["inbound_nodes"] = _read_from(layer["inbound_nodes"], pairs)
    folded = model.__class__.from_config(config)
    for layer in folded.layers:
        old = model.get_layer(layer.name)
        if layer.name in convs:
            layer.set_weights(_folded_weights(old, model.get_layer(convs[layer.name])))
        elif old.weights:
            layer.set_weights(old.get_weights())
    return folded


def _read_from(node, renamed: dict[str, str]):
    """A serialised inbound node with the outputs of the layers in ``renamed`` read from their
    replacements instead (a folded BatchNormalization is never a model output, so the
    model's ``output_layers`` need no change)."""
    if isinstance(node, dict):
        if "keras_history" in node and node["keras_history"][0] in renamed:
            history = list(node["keras_history"])
            history[0] = renamed[history[0]]
            return {**node, "keras_history": history}
        return {key: _read_from(value, renamed) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(_read_from(value, renamed) for value in node)
    return node


def _folded_weights(conv, batch_norm) -> list[np.ndarray]:
    """``[kernel, bias]`` of ``conv`` with ``batch_norm``'s inference map folded in (float64
    arithmetic, stored in the kernel's dtype)."""
    to_numpy = keras.ops.convert_to_numpy
    kernel = to_numpy(conv.kernel)
    dtype = kernel.dtype
    kernel = kernel.astype(np.float64)
    channels = batch_norm.moving_mean.shape[0]
    gamma = to_numpy(batch_norm.gamma) if batch_norm.scale else np.ones(channels)
    beta = to_numpy(batch_norm.beta) if batch_norm.center else np.zeros(channels)
    variance = to_numpy(batch_norm.moving_variance).astype(np.float64)
    scale = gamma.astype(np.float64) / np.sqrt(variance + batch_norm.epsilon)
    shift = beta - to_numpy(batch_norm.moving_mean) * scale
    bias = to_numpy(conv.bias).astype(np.float64) if conv.use_bias else np.zeros(channels)
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        # Output channel c is input channel c // m, multiplier c % m: the kernel
        # (kh, kw, in, m) flattens to the output channels in that order.
        kernel = (kernel.reshape(*kernel.shape[:-2], -1) * scale).reshape(kernel.shape)
    else:
        kernel = kernel * scale  # (kh, kw, in, out): out is the last axis
    return [kernel.astype(dtype), (bias * scale + shift).astype(dtype)]
