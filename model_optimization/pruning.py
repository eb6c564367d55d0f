"""Magnitude pruning for Keras 3 models, written with `keras.ops`.

TensorFlow's model-optimization toolkit (`tfmot.sparsity.keras`) rejects Keras 3 models, so this
module re-implements its magnitude-pruning workflow with the same vocabulary:

```python
from model_optimization.pruning import (
    PolynomialDecay, UpdatePruningStep, prune_low_magnitude, sparsity_report, strip_pruning)

schedule = PolynomialDecay(initial_sparsity=0.0, final_sparsity=0.8, begin_step=0, end_step=1000,
                           frequency=100)
pruned = prune_low_magnitude(model, schedule)            # all Conv2D kernels by default
pruned.compile(optimizer="adam", loss=ssd_loss.compute_loss)
pruned.fit(data, epochs=..., callbacks=[UpdatePruningStep()])
final = strip_pruning(pruned)                 # plain layers, zeros baked into the kernels
print(format_sparsity_report(sparsity_report(final)))
```

How it works: each chosen layer is wrapped in a `PruneLowMagnitude` layer holding a binary mask per
pruned kernel (non-trainable weights, so masks are saved with the model and survive
`keras.models.load_model`) and the pruning step. The wrapper runs the inner layer with
`kernel * mask` (through `Layer.stateless_call`, so the gradient of pruned weights is zero), and the
`UpdatePruningStep` callback recomputes the masks when the schedule says so (keeping the largest
`|w|`) and re-applies them to the kernels after every batch, so pruned weights are exactly zero.

Differences from the TF toolkit (deliberate):
- a mask update keeps exactly `round(n * (1 - sparsity))` weights (ties broken by position); the
  toolkit keeps every weight `>=` the k-th magnitude, so ties could keep more than scheduled.
- masks are recomputed from `|kernel * mask|`, so a pruned weight never comes back.
- the step counter stores the last step run; resuming (a new `fit`, or after save/load) continues at
  the next step instead of repeating the last one.
- no block sparsity (`block_size`/`block_pooling_type`) and no `PrunableLayer` protocol; any layer
  with a `kernel` (Conv1D/2D/3D, Dense, DepthwiseConv2D, Conv2DTranspose) can be pruned.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping

import keras
import numpy as np
from keras import ops

__all__ = [
    "PruningSchedule",
    "ConstantSparsity",
    "PolynomialDecay",
    "PruneLowMagnitude",
    "UpdatePruningStep",
    "prune_low_magnitude",
    "strip_pruning",
    "pruning_wrappers",
    "sparsity_report",
    "format_sparsity_report",
]

# Layers whose weights must never be pruned, by class name (the layer lives in keras_layers and
# may not be importable here): L2Normalization's gamma is a per-channel scale, not a kernel.
NEVER_PRUNE = ("L2Normalization",)


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


def _validate_sparsity(value, name: str) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), received {name}={value}.")
    return value


def _validate_steps(begin_step: int, end_step: int, frequency: int, allow_open_end: bool) -> None:
    if int(begin_step) != begin_step or begin_step < 0:
        raise ValueError(f"`begin_step` must be an integer >= 0, received begin_step={begin_step}.")
    if int(frequency) != frequency or frequency <= 0:
        raise ValueError(f"`frequency` must be an integer > 0, received frequency={frequency}.")
    if allow_open_end and end_step == -1:
        return
    if int(end_step) != end_step or end_step < begin_step:
        raise ValueError(
            f"`end_step` must be an integer >= begin_step ({begin_step})"
            + (" or -1" if allow_open_end else "")
            + f", received end_step={end_step}."
        )


class PruningSchedule:
    """Base class: `schedule(step) -> (update_masks_now, sparsity)`.

    The schedule is evaluated at the start of every training step. Masks are updated at steps
    `begin_step, begin_step + frequency, ...` up to and including `end_step` (`end_step=-1` means
    forever), as in TensorFlow's model-optimization toolkit.
    """

    def __init__(self, begin_step: int, end_step: int, frequency: int):
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.frequency = int(frequency)

    def should_prune(self, step: int) -> bool:
        """Whether the masks are recomputed at training step `step` (0-based)."""
        in_range = step >= self.begin_step and (self.end_step < 0 or step <= self.end_step)
        return bool(in_range and (step - self.begin_step) % self.frequency == 0)

    def sparsity(self, step: int) -> float:
        raise NotImplementedError

    def __call__(self, step: int) -> tuple[bool, float]:
        step = int(step)
        return self.should_prune(step), self.sparsity(step)

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


@keras.saving.register_keras_serializable(package="ssd_keras")
class ConstantSparsity(PruningSchedule):
    """Prune to one fixed sparsity, re-applied every `frequency` steps.

    Args:
        target_sparsity: fraction of each kernel's weights set to zero, in [0, 1).
        begin_step: first training step (0-based) at which the masks are computed.
        end_step: last step at which they may be recomputed; -1 = until training ends.
        frequency: steps between mask updates.
    """

    def __init__(
        self, target_sparsity: float, begin_step: int = 0, end_step: int = -1, frequency: int = 100
    ):
        _validate_steps(begin_step, end_step, frequency, allow_open_end=True)
        super().__init__(begin_step, end_step, frequency)
        self.target_sparsity = _validate_sparsity(target_sparsity, "target_sparsity")

    def sparsity(self, step: int) -> float:
        return self.target_sparsity

    def get_config(self) -> dict:
        return {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }


@keras.saving.register_keras_serializable(package="ssd_keras")
class PolynomialDecay(PruningSchedule):
    """Sparsity rising from `initial_sparsity` to `final_sparsity` between two steps.

    `s(step) = final + (initial - final) * (1 - p) ** power` with
    `p = clip((step - begin_step) / (end_step - begin_step), 0, 1)`, the toolkit's formula
    (sparsity grows fast at first, then slowly). The final sparsity is applied at `end_step` only
    if `end_step - begin_step` is a multiple of `frequency`, as in the toolkit.

    Args:
        initial_sparsity: sparsity at `begin_step`, in [0, 1).
        final_sparsity: sparsity from `end_step` on, in [0, 1).
        begin_step: first step (0-based) at which masks are computed.
        end_step: last step at which masks are recomputed (> begin_step).
        power: exponent of the decay.
        frequency: steps between mask updates.
    """

    def __init__(
        self,
        initial_sparsity: float,
        final_sparsity: float,
        begin_step: int,
        end_step: int,
        power: float = 3,
        frequency: int = 100,
    ):
        _validate_steps(begin_step, end_step, frequency, allow_open_end=False)
        if end_step == begin_step:
            raise ValueError(
                f"`end_step` must be > begin_step for PolynomialDecay, received "
                f"begin_step={begin_step}, end_step={end_step}."
            )
        super().__init__(begin_step, end_step, frequency)
        self.initial_sparsity = _validate_sparsity(initial_sparsity, "initial_sparsity")
        self.final_sparsity = _validate_sparsity(final_sparsity, "final_sparsity")
        self.power = float(power)

    def sparsity(self, step: int) -> float:
        p = (step - self.begin_step) / (self.end_step - self.begin_step)
        p = min(1.0, max(0.0, p))
        return (
            self.final_sparsity
            + (self.initial_sparsity - self.final_sparsity) * (1.0 - p) ** self.power
        )

    def get_config(self) -> dict:
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        }


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """Binary mask keeping the `round(n * (1 - sparsity))` largest-magnitude entries (at least 1).

    Args:
        weights: any-shaped array.
        sparsity: fraction in [0, 1) of entries to zero.

    Returns:
        Array of the same shape and dtype as `weights`, ones where kept.
    """
    flat = np.abs(np.asarray(weights)).ravel()
    n_keep = max(1, int(round(flat.size * (1.0 - sparsity))))
    mask = np.zeros(flat.size, dtype=np.asarray(weights).dtype)
    if n_keep >= flat.size:
        mask[:] = 1
    else:
        # Stable sort of -|w|: ties go to the lower index, so the result is deterministic.
        order = np.argsort(-flat, kind="stable")
        mask[order[:n_keep]] = 1
    return mask.reshape(np.shape(weights))


# --------------------------------------------------------------------------------------------
# The wrapper layer
# --------------------------------------------------------------------------------------------


def prunable_weight_names(layer: keras.layers.Layer) -> list[str]:
    """Attribute names of the weights `prune_low_magnitude` prunes in `layer` (its kernel).

    Raises:
        ValueError: for L2Normalization (its gamma is never pruned) and for layers without a
            kernel.
    """
    cls = type(layer).__name__
    if cls in NEVER_PRUNE:
        raise ValueError(
            f"Layer '{layer.name}' ({cls}) cannot be pruned: its per-channel scale is not a kernel."
        )
    names = [n for n in ("kernel", "depthwise_kernel", "pointwise_kernel") if _has_var(layer, n)]
    if not names:
        raise ValueError(
            f"Layer '{layer.name}' ({cls}) has no kernel to prune; magnitude pruning supports "
            "layers with a `kernel` (Conv*, Dense, DepthwiseConv2D, Conv*Transpose)."
        )
    return names


def _has_var(layer, name: str) -> bool:
    try:
        value = getattr(layer, name, None)
    except Exception:  # some layers raise from properties before being built
        return False
    return isinstance(value, keras.Variable)


@keras.saving.register_keras_serializable(package="ssd_keras")
class PruneLowMagnitude(keras.layers.Wrapper):
    """Runs `layer` with its kernel multiplied by a binary mask.

    The masks (one per pruned kernel, same shape) and the pruning step are non-trainable weights
    of this wrapper, so they are saved and reloaded with the model. The masks are changed only by
    `UpdatePruningStep` (or `update_masks`), never by the optimizer.

    Args:
        layer: the layer to prune (built or not).
        pruning_schedule: a `PruningSchedule`.
        **kwargs: base layer arguments; `name` defaults to `"prune_low_magnitude_" + layer.name`.

    Input / output shapes: those of `layer`.
    """

    def __init__(self, layer, pruning_schedule, **kwargs):
        if isinstance(pruning_schedule, dict):
            pruning_schedule = keras.saving.deserialize_keras_object(pruning_schedule)
        if not isinstance(pruning_schedule, PruningSchedule):
            raise ValueError(
                "`pruning_schedule` must be a PruningSchedule (ConstantSparsity, PolynomialDecay), "
                f"received {pruning_schedule!r}."
            )
        if type(layer).__name__ in NEVER_PRUNE:
            prunable_weight_names(layer)  # raises the explanatory error
        kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        super().__init__(layer, **kwargs)
        self.pruning_schedule = pruning_schedule
        sig = inspect.signature(layer.call).parameters
        self._inner_takes_training = "training" in sig

    def build(self, input_shape=None):
        super().build(input_shape)
        self.weight_names = prunable_weight_names(self.layer)
        self.masks = [
            self.add_weight(
                name=f"{name}_mask",
                shape=tuple(getattr(self.layer, name).shape),
                initializer="ones",
                trainable=False,
                dtype=getattr(self.layer, name).dtype,
                autocast=False,
            )
            for name in self.weight_names
        ]
        # Last training step run; -1 = never trained with pruning.
        self.pruning_step = self.add_weight(
            name="pruning_step",
            shape=(),
            initializer=keras.initializers.Constant(-1),
            trainable=False,
            dtype="int32",
            autocast=False,
        )
        self.built = True

    @property
    def pruned_weights(self) -> list:
        return [getattr(self.layer, name) for name in self.weight_names]

    def _substituted(self, variables):
        by_id = {id(w): m for w, m in zip(self.pruned_weights, self.masks)}
        return [ops.multiply(v, by_id[id(v)]) if id(v) in by_id else v for v in variables]

    def call(self, inputs, training=None):
        kwargs = {"training": training} if self._inner_takes_training else {}
        outputs, _ = self.layer.stateless_call(
            self._substituted(self.layer.trainable_variables),
            self._substituted(self.layer.non_trainable_variables),
            inputs,
            **kwargs,
        )
        return outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    # -- mask maintenance (eager, called by UpdatePruningStep) ------------------------------

    def update_masks(self, sparsity: float) -> None:
        """Recompute every mask for `sparsity` from `|kernel * mask|` and zero the kernels."""
        for weight, mask in zip(self.pruned_weights, self.masks):
            current = ops.convert_to_numpy(weight) * ops.convert_to_numpy(mask)
            new_mask = magnitude_mask(current, sparsity)
            mask.assign(new_mask)
            weight.assign(current * new_mask)

    def apply_masks(self) -> None:
        """Set the pruned kernel entries back to zero (the optimizer may have moved them)."""
        for weight, mask in zip(self.pruned_weights, self.masks):
            weight.assign(ops.multiply(weight, mask))

    def get_config(self):
        config = super().get_config()
        config["pruning_schedule"] = keras.saving.serialize_keras_object(self.pruning_schedule)
        return config


# --------------------------------------------------------------------------------------------
# The callback
# --------------------------------------------------------------------------------------------


def pruning_wrappers(model: keras.Model) -> list[PruneLowMagnitude]:
    """All `PruneLowMagnitude` layers of `model`, nested models included."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, PruneLowMagnitude)]


class UpdatePruningStep(keras.callbacks.Callback):
    """Keras callback that drives the pruning schedule during `fit`.

    At the start of every batch it records the step in every wrapper and, where the wrapper's
    schedule says so, recomputes its masks; after every batch it re-zeroes the pruned weights.
    Steps are counted across `fit` calls and across save/load (the step is a model weight).

    With the JAX backend the model's variables are only brought up to date on request, so the
    callback syncs them only at mask updates and at the end of each epoch (the forward pass
    always uses `kernel * mask`, so outputs and gradients are the same; only the raw variable
    may hold non-zero pruned entries in between).

    Note: with `steps_per_execution > 1` Keras calls batch hooks once per execution, so the
    schedule then counts executions, not batches.
    """

    def __init__(self):
        super().__init__()
        self.step: int | None = 0
        self._wrappers: list[PruneLowMagnitude] = []
        self._lazy = False

    def _sync(self):
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:
            sync()

    def on_train_begin(self, logs=None):
        self._wrappers = pruning_wrappers(self.model)
        if not self._wrappers:
            raise ValueError(
                "UpdatePruningStep: the model has no PruneLowMagnitude layers; "
                "wrap it with prune_low_magnitude() first."
            )
        if not all(w.built for w in self._wrappers):
            raise ValueError("UpdatePruningStep: the pruned model must be built before fit().")
        self._lazy = hasattr(self.model, "jax_state_sync")
        # The step is read at the first batch, not here: `BackupAndRestore` restores the wrappers
        # in its own on_train_begin, which may run after this one (reading here restarted a
        # resumed schedule at step 0 and re-opened its masks).
        self.step = None

    def _read_step(self) -> int:
        self._sync()
        return max(int(ops.convert_to_numpy(w.pruning_step)) for w in self._wrappers) + 1

    def on_train_batch_begin(self, batch, logs=None):
        if self.step is None:
            self.step = self._read_step()
        due = []
        for wrapper in self._wrappers:
            update, sparsity = wrapper.pruning_schedule(self.step)
            if update:
                due.append((wrapper, sparsity))
        if due or not self._lazy:
            self._sync()
            for wrapper in self._wrappers:
                wrapper.pruning_step.assign(self.step)
            for wrapper, sparsity in due:
                wrapper.update_masks(sparsity)

    def on_train_batch_end(self, batch, logs=None):
        if not self._lazy:
            for wrapper in self._wrappers:
                wrapper.apply_masks()
        self.step += 1

    def on_epoch_end(self, epoch, logs=None):
        if self._lazy and self.step is not None:
            self._sync()
            for wrapper in self._wrappers:
                wrapper.pruning_step.assign(self.step - 1)
                wrapper.apply_masks()


# --------------------------------------------------------------------------------------------
# Model transformations
# --------------------------------------------------------------------------------------------


def _check_graph_model(model, fn_name: str) -> None:
    if not isinstance(model, keras.Model) or not (
        isinstance(model, keras.Sequential) or type(model).__name__ == "Functional"
    ):
        raise ValueError(
            f"{fn_name} needs a functional or Sequential keras.Model, received "
            f"{type(model).__name__}."
        )


def _clone(model, clone_function):
    """`keras.models.clone_model` keeping the input layers' names, returning an uncompiled copy.

    (clone_model would re-compile the copy from the original's compile config, which fails for
    losses that do not serialise, such as a bound `SSDLoss().compute_loss`; the copies made here
    are meant to be compiled by the caller anyway.)
    """
    compiled = getattr(model, "compiled", False)
    model.compiled = False
    try:
        if isinstance(model, keras.Sequential):
            return keras.models.clone_model(model, clone_function=clone_function)
        inputs = [
            keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t._keras_history.operation.name)
            for t in model.inputs
        ]
        if len(inputs) == 1 and not isinstance(model._inputs_struct, (list, tuple)):
            inputs = inputs[0]
        return keras.models.clone_model(model, input_tensors=inputs, clone_function=clone_function)
    finally:
        model.compiled = compiled


def _rebuild(model, make_layer):
    """`_clone` with ``make_layer(layer) -> new layer`` for every layer.

    Returns:
        ``(copy, replaced)``: the new model and the ``(old, new)`` layer pairs whose new layer is
        not the old one, in cloning order; the caller copies (or converts) their weights.
    """
    copies = {}

    def clone(layer):
        new = make_layer(layer)
        copies[layer.name] = (layer, new)
        return new

    copy = _clone(model, clone)
    return copy, [(old, new) for old, new in copies.values() if new is not old]


def _fresh_copy(layer):
    """A new layer with the same config (weights copied later), or `layer` itself if it has no
    weights and cannot be re-created from its config (e.g. a Lambda in safe mode)."""
    try:
        return layer.__class__.from_config(layer.get_config())
    except Exception:
        if layer.weights:
            raise
        return layer


def _select_layers(model, layers) -> list:
    all_layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if layers is None:
        return [layer for layer in all_layers if isinstance(layer, keras.layers.Conv2D)]
    if callable(layers):
        return [layer for layer in all_layers if layers(layer)]
    if isinstance(layers, str):
        layers = [layers]
    names = {layer.name: layer for layer in all_layers}
    unknown = [n for n in layers if n not in names]
    if unknown:
        raise ValueError(f"`layers`: no layer named {unknown} in model '{model.name}'.")
    return [names[n] for n in layers]


def prune_low_magnitude(
    model: keras.Model,
    pruning_schedule: PruningSchedule | Mapping[str, PruningSchedule],
    layers: Iterable[str] | Callable[[keras.layers.Layer], bool] | None = None,
) -> keras.Model:
    """Return a copy of `model` whose chosen layers are wrapped for magnitude pruning.

    The original model is left untouched (the copy has its own weights). Train the copy with the
    `UpdatePruningStep` callback, then call `strip_pruning`.

    Args:
        model: a built functional or Sequential model.
        pruning_schedule: one schedule for all chosen layers, or a dict `{layer_name: schedule}`
            (then `layers` defaults to the dict's keys).
        layers: which layers to prune: `None` = every `Conv2D` (SSD heads included), a list of
            layer names, or a predicate `fn(layer) -> bool`. L2Normalization is always refused.

    Returns:
        A new model, same inputs/outputs, with `PruneLowMagnitude` wrappers named
        `prune_low_magnitude_<name>`.
    """
    _check_graph_model(model, "prune_low_magnitude")
    if pruning_wrappers(model):
        raise ValueError(f"Model '{model.name}' is already wrapped for pruning.")
    if isinstance(pruning_schedule, Mapping):
        schedules = dict(pruning_schedule)
        if layers is None:
            layers = list(schedules)
    else:
        schedules = None
    chosen = {layer.name for layer in _select_layers(model, layers)}
    if not chosen:
        raise ValueError(f"No layer of model '{model.name}' was selected for pruning.")
    for name in chosen:
        prunable_weight_names(model.get_layer(name))
        if schedules is not None and name not in schedules:
            raise ValueError(f"`pruning_schedule` has no schedule for layer '{name}'.")

    def clone(layer):
        if layer.name in chosen:
            schedule = schedules[layer.name] if schedules is not None else pruning_schedule
            return PruneLowMagnitude(_fresh_copy(layer), schedule)
        return _fresh_copy(layer)

    pruned, replaced = _rebuild(model, clone)
    for old, new in replaced:
        target = new.layer if isinstance(new, PruneLowMagnitude) else new
        target.set_weights(old.get_weights())
    return pruned


def strip_pruning(model: keras.Model) -> keras.Model:
    """Return a plain copy of a pruned model: wrappers removed, masks multiplied into the kernels.

    The layers get back their original names, so the result has the architecture of the model
    given to `prune_low_magnitude` (and loads without this module).
    """
    _check_graph_model(model, "strip_pruning")

    def clone(layer):
        return _fresh_copy(layer.layer if isinstance(layer, PruneLowMagnitude) else layer)

    stripped, replaced = _rebuild(model, clone)
    for old, new in replaced:
        if isinstance(old, PruneLowMagnitude):
            masked = {id(w): m for w, m in zip(old.pruned_weights, old.masks)}
            values = [
                ops.convert_to_numpy(v) * ops.convert_to_numpy(masked[id(v)])
                if id(v) in masked
                else ops.convert_to_numpy(v)
                for v in old.layer.weights
            ]
            new.set_weights(values)
        else:
            new.set_weights(old.get_weights())
    return stripped


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def sparsity_report(model: keras.Model, all_kernels: bool = True) -> list[dict]:
    """Per-layer sparsity of the kernels of `model` (pruned or stripped).

    Args:
        model: any model; for wrapped layers the effective kernel `kernel * mask` is counted.
        all_kernels: also list kernels of layers that are not wrapped (their zeros are counted
            too, so a stripped model reports its sparsity).

    Returns:
        One dict per kernel: `layer` (original layer name), `weight`, `shape`, `size`,
        `zeros`, `sparsity` (zeros / size) and `wrapped` (bool).
    """
    rows = []
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, PruneLowMagnitude):
            if not layer.built:
                continue
            for name, weight, mask in zip(layer.weight_names, layer.pruned_weights, layer.masks):
                value = ops.convert_to_numpy(weight) * ops.convert_to_numpy(mask)
                rows.append(_row(layer.layer.name, name, value, True))
        elif all_kernels and not isinstance(layer, keras.Model):
            if any(layer is w.layer for w in pruning_wrappers(model)):
                continue
            if type(layer).__name__ in NEVER_PRUNE:
                continue
            for name in ("kernel", "depthwise_kernel", "pointwise_kernel"):
                if _has_var(layer, name):
                    rows.append(
                        _row(layer.name, name, ops.convert_to_numpy(getattr(layer, name)), False)
                    )
    return rows


def _row(layer_name, weight_name, value, wrapped) -> dict:
    zeros = int(np.count_nonzero(value == 0))
    return {
        "layer": layer_name,
        "weight": weight_name,
        "shape": tuple(int(d) for d in value.shape),
        "size": int(value.size),
        "zeros": zeros,
        "sparsity": zeros / value.size if value.size else 0.0,
        "wrapped": wrapped,
    }


def format_sparsity_report(rows: list[dict]) -> str:
    """A fixed-width table of `sparsity_report` rows with a total line."""
    lines = [f"{'layer':<28} {'weight':<16} {'shape':<20} {'size':>10} {'sparsity':>9}"]
    for r in rows:
        lines.append(
            f"{r['layer']:<28} {r['weight']:<16} {str(r['shape']):<20} {r['size']:>10} "
            f"{r['sparsity']:>8.2%}"
        )
    size = sum(r["size"] for r in rows)
    zeros = sum(r["zeros"] for r in rows)
    lines.append(f"{'total':<28} {'':<16} {'':<20} {size:>10} {zeros / max(size, 1):>8.2%}")
    return "\n".join(lines)
