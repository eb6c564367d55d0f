"""Structured (filter) pruning: remove whole output channels and rebuild a smaller model.

Magnitude pruning leaves the tensors their size (zeros still cost time on a CPU); filter pruning
makes the convolutions physically narrower, which is what speeds up inference.

For every *producer* layer (a `Conv2D`/`Conv1D`/`Conv3D` or `Dense`) whose channels are pruned, the
channel axis is followed downstream through *channel-preserving* layers (BatchNormalization,
element-wise activations, pooling, padding/cropping, dropout, global pooling, DepthwiseConv2D,
L2Normalization, PReLU) to the *consumers* that read those channels (Conv*/Dense kernels, whose
input rows are sliced) or only the tensor's spatial shape (`AnchorBoxes`). A producer whose
channels reach anything else (a model output, `Reshape`, `Flatten`, `Add`, `Concatenate`, ...) is
not prunable; for SSD this keeps the heads (`classes*`, `boxes*`, `*_mbox_*`) intact, since their
channel layout is the prediction layout.

```python
from model_optimization.structured import prune_filters, filter_pruning_report

small = prune_filters(ssd7, amount=0.5, criterion="bn_gamma")     # conv1..conv7 halved
for row in filter_pruning_report(ssd7, small):
    print(row)
small.compile(...); small.fit(...)                                  # optional fine-tuning
```

The outputs are unchanged when the removed channels are exactly zero where the consumers read
them (e.g. a Conv->BN->ELU block whose BN gamma and beta are zero for those channels, or a
Conv->ReLU block with zero kernel and bias): `tests/model_optimization` checks this on SSD7.
A removed channel behind a BatchNormalization is not zero: it carries ``act(beta + gamma * z)``
with ``z`` about standard normal, whose mean the consumers relied on. `remove_filters` folds that
mean (computed from gamma and beta by Gauss-Hermite quadrature through the element-wise
activation) into the consumers' biases: exact for a constant channel (gamma = 0) away from
`'same'` padding borders, and the expected value otherwise. Dropping it cost a lightly trained
SSD7 most of its mAP after removing 10% of the filters (issue 14). The ``'contribution'``
criterion ranks a filter by the standard deviation of that channel (what folding cannot keep)
times the L1 norm of the consumer weights reading it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import keras
import numpy as np

from model_optimization.pruning import (
    PruneLowMagnitude,
    _check_graph_model,
    _fresh_copy,
    _rebuild,
)

__all__ = [
    "prunable_filters",
    "filter_importance",
    "select_filters",
    "remove_filters",
    "prune_filters",
    "filter_pruning_report",
]

_PRODUCERS = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Dense,
)
_CONSUMERS = _PRODUCERS
# Channel statistics pass unchanged (approximately, for pooling) through these layers.
_MOMENT_PRESERVING = (
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.Identity,
    keras.layers.ZeroPadding1D,
    keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D,
    keras.layers.Cropping1D,
    keras.layers.Cropping2D,
    keras.layers.Cropping3D,
    keras.layers.UpSampling1D,
    keras.layers.UpSampling2D,
    keras.layers.UpSampling3D,
)
# Each channel of these layers' output depends on the same channel of their input alone.
_PRESERVING = (
    *_MOMENT_PRESERVING,
    keras.layers.BatchNormalization,
    keras.layers.ELU,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
    keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalMaxPooling3D,
    keras.layers.GaussianNoise,
    keras.layers.DepthwiseConv2D,
)
# By class name: these live in keras_layers, which this module does not need to import.
_PRESERVING_BY_NAME = ("L2Normalization",)
_SHAPE_ONLY_BY_NAME = ("AnchorBoxes",)
# Activations that mix channels: removing a channel would change the others.
_CHANNEL_MIXING_ACTIVATIONS = ("softmax", "log_softmax")


def _kind(layer) -> str:
    name = type(layer).__name__
    if isinstance(layer, keras.layers.Activation):
        act = getattr(layer.activation, "__name__", str(layer.activation))
        return "mixing" if act in _CHANNEL_MIXING_ACTIVATIONS else "preserve"
    if isinstance(layer, _PRESERVING) or name in _PRESERVING_BY_NAME:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.axis not in (
            -1,
            _rank(layer) - 1,
        ):
            return "other"
        return "preserve"
    if name in _SHAPE_ONLY_BY_NAME:
        return "shape_only"
    if isinstance(layer, _CONSUMERS) and getattr(layer, "groups", 1) == 1:
        return "consume"
    return "other"


def _rank(layer) -> int:
    try:
        return len(layer.input.shape)
    except Exception:
        return 0


class _Graph:
    """Who reads whose output, within one functional model (shared layers are rejected)."""

    def __init__(self, model: keras.Model):
        fn = model._functional if isinstance(model, keras.Sequential) else model
        self.consumers: dict[str, list] = {}
        self.n_inputs: dict[str, int] = {}
        calls: dict[str, int] = {}
        nodes = [node for depth_nodes in fn._nodes_by_depth.values() for node in depth_nodes]
        for node in nodes:
            op = node.operation
            calls[op.name] = calls.get(op.name, 0) + 1
            self.n_inputs[op.name] = len(node.input_tensors)
            for parent in node.parent_nodes:
                self.consumers.setdefault(parent.operation.name, []).append(op)
        self.shared = {name for name, n in calls.items() if n > 1}
        self.outputs = {t._keras_history.operation.name for t in fn.outputs}
        self.layers = {layer.name: layer for layer in model.layers}

    def trace(self, producer_name: str):
        """Layers reached by `producer_name`'s channels, or a string saying why it cannot be pruned.

        Returns:
            `(preserving, consumers)`: lists of `(layer, factor)`; `factor` is how many channels
            each producer channel has become at the layer's input (DepthwiseConv2D with
            `depth_multiplier=m` turns channel `c` into channels `c*m ... c*m + m - 1`).
        """
        producer = self.layers[producer_name]
        if not isinstance(producer, _PRODUCERS) or getattr(producer, "groups", 1) != 1:
            return f"'{producer_name}' ({type(producer).__name__}) is not a Conv/Dense layer"
        preserving, consumers = [], []
        frontier = [(producer_name, 1)]
        while frontier:
            name, factor = frontier.pop(0)
            if name in self.shared:
                return f"'{name}' is shared (called more than once)"
            if name in self.outputs:
                return f"the channels of '{producer_name}' reach the model output '{name}'"
            for layer in self.consumers.get(name, []):
                kind = _kind(layer)
                if self.n_inputs.get(layer.name, 1) != 1:
                    return f"'{layer.name}' ({type(layer).__name__}) has several inputs"
                if kind == "preserve":
                    preserving.append((layer, factor))
                    out_factor = factor * int(getattr(layer, "depth_multiplier", 1))
                    frontier.append((layer.name, out_factor))
                elif kind == "consume":
                    if layer.name in self.shared:
                        return f"'{layer.name}' is shared (called more than once)"
                    consumers.append((layer, factor))
                elif kind == "shape_only":
                    continue
                else:
                    return (
                        f"the channels of '{producer_name}' reach '{layer.name}' "
                        f"({type(layer).__name__}), which depends on the channel layout"
                    )
        return preserving, consumers


_np = keras.ops.convert_to_numpy
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(48)  # for E[f(Z)], Z ~ N(0, 1)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def _activation(layer):
    """The numpy form of an element-wise activation layer, or None."""
    if isinstance(layer, keras.layers.ELU):
        alpha = float(getattr(layer, "alpha", 1.0))
        return lambda x: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))
    if isinstance(layer, keras.layers.ReLU) and not layer.max_value and not layer.threshold:
        slope = float(layer.negative_slope or 0.0)
        return lambda x: np.where(x > 0, x, slope * x)
    if isinstance(layer, keras.layers.Activation):
        name = getattr(layer.activation, "__name__", str(layer.activation))
        if name == "relu":
            return lambda x: np.maximum(x, 0)
        if name == "elu":
            return lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
        if name == "linear":
            return lambda x: x
    return None


def channel_moments(model: keras.Model, producer_name: str) -> dict:
    """Mean and standard deviation of each output channel of a producer, as each consumer reads
    it, where a BatchNormalization fixes them (``None`` for a consumer where they are unknown).

    Behind a BatchNormalization (inference mode) a channel is ``beta + gamma * z`` with ``z``
    about standard normal; an element-wise activation maps that through Gauss-Hermite
    quadrature; pooling, padding and dropout layers are taken to keep the statistics.

    Returns:
        ``{consumer_name: (mean, std) or None}``; ``mean`` and ``std`` are ``(channels,)``.
    """
    graph = _Graph(model)
    moments: dict = {}
    frontier = [(producer_name, None)]
    while frontier:
        name, stats = frontier.pop(0)
        for layer in graph.consumers.get(name, []):
            kind = _kind(layer)
            if kind == "consume":
                moments[layer.name] = stats
                continue
            if kind != "preserve":
                continue
            activation = _activation(layer)
            if isinstance(layer, keras.layers.BatchNormalization):
                n = int(layer.moving_mean.shape[-1])
                gamma = np.ones(n) if layer.gamma is None else np.abs(_np(layer.gamma))
                beta = np.zeros(n) if layer.beta is None else _np(layer.beta)
                new = (beta.astype(np.float64), gamma.astype(np.float64))
            elif activation is not None and stats is not None:
                values = activation(stats[0][:, None] + stats[1][:, None] * _NODES[None, :])
                mean = values @ _WEIGHTS
                std = np.sqrt(np.maximum(((values - mean[:, None]) ** 2) @ _WEIGHTS, 0.0))
                new = (mean, std)
            elif isinstance(layer, _MOMENT_PRESERVING):
                new = stats
            else:
                new = None
            frontier.append((layer.name, new))
    return moments


def _contribution_scores(model: keras.Model, layer_name: str) -> np.ndarray:
    traced = _Graph(model).trace(layer_name)
    if isinstance(traced, str):
        raise ValueError(f"Layer '{layer_name}' cannot be pruned: {traced}.")
    moments = channel_moments(model, layer_name)
    layer = model.get_layer(layer_name)
    n = int(layer.kernel.shape[-1])
    scores = np.zeros(n)
    for consumer, factor in traced[1]:
        kernel = keras.ops.convert_to_numpy(consumer.kernel)
        used = np.abs(kernel).sum(axis=tuple(i for i in range(kernel.ndim) if i != kernel.ndim - 2))
        used = used.reshape(n, factor).sum(1)
        stats = moments.get(consumer.name)
        if stats is None:  # no BatchNormalization: the filter's kernel L1 stands for its scale
            flat = keras.ops.convert_to_numpy(layer.kernel).reshape(-1, n)
            spread = np.abs(flat).sum(0)
        else:
            spread = stats[1]
        scores += spread * used
    return scores


def _expand(keep: np.ndarray, factor: int) -> np.ndarray:
    """Channel indices after a depth multiplier: `c -> c * factor + (0 .. factor - 1)`."""
    return (keep[:, None] * factor + np.arange(factor)[None, :]).ravel()


def _check_no_wrappers(model):
    if any(isinstance(layer, PruneLowMagnitude) for layer in model._flatten_layers()):
        raise ValueError("Call strip_pruning(model) before structured pruning.")


def prunable_filters(model: keras.Model) -> dict[str, str | None]:
    """For every Conv/Dense layer of `model`: `None` if its filters can be removed, else why not."""
    _check_graph_model(model, "prunable_filters")
    graph = _Graph(model)
    result = {}
    for layer in model.layers:
        if isinstance(layer, _PRODUCERS):
            traced = graph.trace(layer.name)
            result[layer.name] = traced if isinstance(traced, str) else None
    return result


def filter_importance(
    model: keras.Model, layer_name: str, criterion: str | Callable = "l1"
) -> np.ndarray:
    """Importance score of each output channel of `layer_name` (higher = keep).

    Args:
        model: the model.
        layer_name: a prunable producer.
        criterion: `'l1'` (sum of |kernel| per filter), `'l2'` (its Euclidean norm), `'bn_gamma'`
            (|gamma| of the first BatchNormalization after the layer: network slimming),
            `'contribution'` (the channel's standard deviation where the consumers read it, from
            the BatchNormalization's gamma and beta through the activation, times the L1 norm
            of the consumer weights reading it; see `channel_moments`), or
            `fn(layer) -> (channels,)` array.

    Returns:
        `(channels,)` float array.
    """
    layer = model.get_layer(layer_name)
    if callable(criterion):
        scores = np.asarray(criterion(layer), dtype=np.float64)
    elif criterion in ("l1", "l2"):
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        flat = kernel.reshape(-1, kernel.shape[-1])
        scores = np.abs(flat).sum(0) if criterion == "l1" else np.sqrt((flat**2).sum(0))
    elif criterion == "contribution":
        scores = _contribution_scores(model, layer_name)
    elif criterion == "bn_gamma":
        traced = _Graph(model).trace(layer_name)
        if isinstance(traced, str):
            raise ValueError(f"Layer '{layer_name}' cannot be pruned: {traced}.")
        bns = [p for p, _ in traced[0] if isinstance(p, keras.layers.BatchNormalization)]
        if not bns or bns[0].gamma is None:
            raise ValueError(
                f"criterion='bn_gamma': no BatchNormalization with a gamma follows '{layer_name}'."
            )
        scores = np.abs(keras.ops.convert_to_numpy(bns[0].gamma))
    else:
        raise ValueError(
            "`criterion` must be 'l1', 'l2', 'bn_gamma', 'contribution' or a callable, "
            f"received {criterion!r}."
        )
    n = int(layer.kernel.shape[-1])
    if scores.shape != (n,):
        raise ValueError(
            f"criterion gave shape {scores.shape} for '{layer_name}', expected ({n},)."
        )
    return scores


def select_filters(
    model: keras.Model,
    amount: float | Mapping[str, float] = 0.5,
    layers: Iterable[str] | None = None,
    criterion: str | Callable = "l1",
    round_to: int = 1,
    min_filters: int = 1,
) -> dict[str, np.ndarray]:
    """Choose which output channels to keep in each pruned layer.

    Args:
        model: a functional or Sequential model (not wrapped for magnitude pruning).
        amount: fraction of each layer's filters to remove, in [0, 1), or `{layer_name: fraction}`.
        layers: layer names to prune; `None` = every prunable Conv/Dense layer (see
            `prunable_filters`), or the keys of `amount` when it is a dict.
        criterion: see `filter_importance`.
        round_to: round the number of kept filters up to a multiple of this (hardware friendly).
        min_filters: never keep fewer filters than this.

    Returns:
        `{layer_name: sorted indices of the kept channels}`.
    """
    _check_graph_model(model, "select_filters")
    _check_no_wrappers(model)
    status = prunable_filters(model)
    if isinstance(amount, Mapping):
        amounts = dict(amount)
        names = list(amounts) if layers is None else list(layers)
    else:
        names = [n for n, why in status.items() if why is None] if layers is None else list(layers)
        amounts = {n: amount for n in names}
    if int(round_to) < 1 or int(min_filters) < 1:
        raise ValueError(
            f"`round_to` and `min_filters` must be >= 1, received {round_to}, {min_filters}."
        )
    keep = {}
    for name in names:
        if name not in status:
            raise ValueError(f"`layers`: '{name}' is not a Conv/Dense layer of '{model.name}'.")
        if status[name] is not None:
            raise ValueError(f"Layer '{name}' cannot be pruned: {status[name]}.")
        fraction = float(amounts.get(name, 0.0))
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"`amount` for '{name}' must be in [0, 1), received {fraction}.")
        scores = filter_importance(model, name, criterion)
        n = scores.size
        n_keep = n - int(round(fraction * n))
        n_keep = int(np.ceil(n_keep / round_to) * round_to)
        n_keep = min(n, max(n_keep, int(min_filters)))
        # Stable sort of -score: equal scores keep the lower channel index.
        order = np.argsort(-scores, kind="stable")
        keep[name] = np.sort(order[:n_keep])
    return keep


def _slice_preserving(layer, keep: np.ndarray, n_channels: int) -> list[np.ndarray]:
    """Slice a channel-preserving layer's weights; `keep` indexes its `n_channels` inputs."""
    values = []
    for variable in layer.weights:
        value = keras.ops.convert_to_numpy(variable)
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            if variable.name == "kernel":  # (kh, kw, C, multiplier)
                value = value[:, :, keep, :]
            elif variable.name == "bias":  # (C * multiplier,), channel-major
                value = value.reshape(n_channels, -1)[keep].ravel()
        elif value.ndim and value.shape[-1] == n_channels:
            value = value[..., keep]
        values.append(value)
    return values


class _RemovalPlan:
    """Which channels `remove_filters` keeps, per layer of the new model.

    Attributes:
        out_keep: per pruned producer, the sorted output channels it keeps.
        in_keep: per consumer (Conv/Dense), the input channels (kernel rows) it keeps.
        bias_shift: per consumer, the mean of each removed input channel (0 for kept ones),
            folded into its bias.
        preserved: per channel-preserving layer (BatchNormalization, DepthwiseConv2D, ...),
            ``(kept channels, channels before)``.
    """

    def __init__(self, model: keras.Model, keep: Mapping[str, Iterable[int]]):
        graph = _Graph(model)
        self.out_keep: dict[str, np.ndarray] = {}
        self.in_keep: dict[str, np.ndarray] = {}
        self.bias_shift: dict[str, np.ndarray] = {}
        self.preserved: dict[str, tuple[np.ndarray, int]] = {}
        for name, indices in keep.items():
            if name not in graph.layers:
                raise ValueError(f"`keep`: no layer named '{name}' in model '{model.name}'.")
            traced = graph.trace(name)
            if isinstance(traced, str):
                raise ValueError(f"Layer '{name}' cannot be pruned: {traced}.")
            n = int(graph.layers[name].kernel.shape[-1])
            idx = np.asarray(sorted({int(i) for i in indices}), dtype=np.int64)
            if idx.size == 0 or idx[0] < 0 or idx[-1] >= n:
                raise ValueError(
                    f"`keep['{name}']` must hold 1..{n} channel indices in [0, {n}), "
                    f"received {list(indices)}."
                )
            self.out_keep[name] = idx
            removed = np.setdiff1d(np.arange(n), idx)
            for consumer, stats in channel_moments(model, name).items():
                if stats is not None and removed.size:
                    means = np.zeros(n)
                    means[removed] = stats[0][removed]
                    self.bias_shift[consumer] = self.bias_shift.get(consumer, 0.0) + means
            for layer, factor in traced[0]:
                self.preserved[layer.name] = (_expand(idx, factor), n * factor)
            for layer, factor in traced[1]:
                self.in_keep[layer.name] = _expand(idx, factor)

    def new_layer(self, layer):
        """The layer of the smaller model: fewer filters/units if pruned, else a fresh copy."""
        if layer.name in self.out_keep:
            config = layer.get_config()
            key = "units" if isinstance(layer, keras.layers.Dense) else "filters"
            config[key] = int(self.out_keep[layer.name].size)
            return layer.__class__.from_config(config)
        return _fresh_copy(layer)

    def new_weights(self, old) -> list[np.ndarray]:
        """``old``'s weights for its smaller copy: sliced, removed channels' means in the bias."""
        if old.name in self.preserved:
            return _slice_preserving(old, *self.preserved[old.name])
        shift = None
        if old.name in self.bias_shift and getattr(old, "use_bias", False):
            kernel = keras.ops.convert_to_numpy(old.kernel)
            # (..., C_in, C_out): every position of the window reads the removed channel's mean.
            per_channel = kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1]).sum(0)
            if per_channel.shape[0] == self.bias_shift[old.name].size:
                shift = self.bias_shift[old.name] @ per_channel
        values = []
        for variable in old.weights:
            value = keras.ops.convert_to_numpy(variable)
            if variable.name == "bias" and shift is not None:
                value = value + shift.astype(value.dtype)
            if variable.name == "kernel":
                if old.name in self.in_keep:
                    value = np.take(value, self.in_keep[old.name], axis=-2)
                if old.name in self.out_keep:
                    value = np.take(value, self.out_keep[old.name], axis=-1)
            elif variable.name == "bias" and old.name in self.out_keep:
                value = value[self.out_keep[old.name]]
            values.append(value)
        return values


def remove_filters(model: keras.Model, keep: Mapping[str, Iterable[int]]) -> keras.Model:
    """Rebuild `model` keeping only the listed output channels of the listed layers.

    Following layers are rewired: BatchNormalization/L2Normalization/PReLU/DepthwiseConv2D
    weights are sliced along the channel axis and the consuming Conv/Dense kernels lose the
    matching input rows.

    Args:
        model: the dense model (left untouched).
        keep: `{producer_layer_name: indices of the channels to keep}` (e.g. from
            `select_filters`).

    Returns:
        A new, smaller model with the same layer names, inputs and output shapes.
    """
    _check_graph_model(model, "remove_filters")
    _check_no_wrappers(model)
    plan = _RemovalPlan(model, keep)
    smaller, replaced = _rebuild(model, plan.new_layer)
    for old, new in replaced:
        new.set_weights(plan.new_weights(old))
    return smaller


def prune_filters(
    model: keras.Model,
    amount: float | Mapping[str, float] = 0.5,
    layers: Iterable[str] | None = None,
    criterion: str | Callable = "l1",
    round_to: int = 1,
    min_filters: int = 1,
) -> keras.Model:
    """`remove_filters(model, select_filters(model, ...))`: one call from dense to small.

    Example: `prune_filters(build_model(**SSD7_UDACITY), 0.5, criterion="bn_gamma")` halves
    conv1..conv7 of SSD7; the heads keep their width.
    """
    keep = select_filters(model, amount, layers, criterion, round_to, min_filters)
    return remove_filters(model, keep)


def filter_pruning_report(original: keras.Model, pruned: keras.Model) -> list[dict]:
    """Per-layer filters and parameters before/after, plus a `'total'` row.

    Returns:
        Dicts with `layer`, `filters_before`, `filters_after`, `params_before`, `params_after`.
    """
    rows = []
    for layer in original.layers:
        if not isinstance(layer, _PRODUCERS):
            continue
        other = pruned.get_layer(layer.name)
        rows.append(
            {
                "layer": layer.name,
                "filters_before": int(layer.kernel.shape[-1]),
                "filters_after": int(other.kernel.shape[-1]),
                "params_before": int(layer.count_params()),
                "params_after": int(other.count_params()),
            }
        )
    rows.append(
        {
            "layer": "total",
            "filters_before": sum(r["filters_before"] for r in rows),
            "filters_after": sum(r["filters_after"] for r in rows),
            "params_before": int(original.count_params()),
            "params_after": int(pruned.count_params()),
        }
    )
    return rows
