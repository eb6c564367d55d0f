"""Load weights of the original ssd_keras (Keras 2 HDF5 layout) into our models, by layer name.

The ported Caffe weights that ssd_keras users have (``VGG_VOC0712_SSD_300x300_iter_120000.h5``, the
reduced VGG16 base ``VGG_ILSVRC_16_layers_fc_reduced.h5``, their own Keras 2 checkpoints) are HDF5
files in the Keras 2 layout:

- a full-model file (``model.save``) holds a group ``model_weights``; a weights-only file
  (``model.save_weights``) holds the same content at its root;
- that group lists its layers in the attribute ``layer_names``; each layer is a group
  ``<layer>`` whose attribute ``weight_names`` lists its weights in order, stored as datasets
  at those paths inside the layer group, e.g. ``model_weights/conv1_1/conv1_1/kernel:0``.

Files of the "applying pruning" fork (TensorFlow model-optimization toolkit, Keras 2.x) hold wrapped
layers: a group ``prune_low_magnitude_<name>`` lists ``<name>/kernel:0``, ``<name>/bias:0`` (the
inner layer's weights) and the wrapper's ``prune_low_magnitude_<name>/mask:0``, ``.../threshold:0``
and ``.../pruning_step:0``; quantisation-aware files have ``quant_<name>`` groups holding
``<name>/kernel:0``, ``<name>/bias:0`` and the quantisers' variables. Such a wrapped group is read
as the inner layer ``<name>`` (plus its masks and pruning step), so it loads into a plain model
and into a model wrapped with `model_optimization.pruning.prune_low_magnitude`.

`resume_from_h5` continues training from a Keras 2 full-model file (the original notebooks'
``ModelCheckpoint``, the fork's checkpoints): weights, optimizer and optimizer state.

Keras 3 can read such files (``model.load_weights(path)`` for ``.h5``), but it says little about
what it skipped. `load_legacy_weights` matches layers by name, checks every shape, and returns a
`LegacyWeightsReport` saying what was loaded, what was missing on either side and what did not
fit. Conv kernels are stored ``(kh, kw, in, out)`` by Keras 2 with TensorFlow, as in Keras 3; the
Theano kernel orientation of Keras 1 files is not converted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import keras
import numpy as np

from keras_loss_function.keras_ssd_loss import SSDLoss


@dataclass
class LegacyWeightsReport:
    """What `load_legacy_weights` did.

    Attributes:
        filepath: the file that was read.
        loaded: names of the model layers whose weights were all set from the file.
        missing_in_file: model layers that have weights but no group in the file (left as they
            were, e.g. freshly initialised heads).
        unused_in_file: file layers with weights that the model has no layer for.
        mismatched: ``(layer, weight, shape in file, shape in model)``, one entry per weight that
            does not fit (or one per layer whose number of weights differs); such layers are left
            as they were. Only filled with ``skip_mismatch=True``.
        pruning_restored: wrapped model layers (``prune_low_magnitude_<name>``) whose masks and
            pruning step were set from the file.
        not_restored: ``"<file layer>/<weight>: why"`` for file weights read but not used: the
            toolkit's thresholds, quantiser variables, masks when the model layer is not wrapped.
        optimizer: what `resume_from_h5` did with the optimizer and its state (empty otherwise).
    """

    filepath: str
    loaded: list[str] = field(default_factory=list)
    missing_in_file: list[str] = field(default_factory=list)
    unused_in_file: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, str, tuple, tuple]] = field(default_factory=list)
    pruning_restored: list[str] = field(default_factory=list)
    not_restored: list[str] = field(default_factory=list)
    optimizer: str = ""

    def __str__(self) -> str:
        lines = [
            f"Legacy weights from {self.filepath}: {len(self.loaded)} layers loaded, "
            f"{len(self.mismatched)} skipped for a shape mismatch, "
            f"{len(self.missing_in_file)} model layers not in the file, "
            f"{len(self.unused_in_file)} file layers not in the model."
        ]
        for layer, weight, file_shape, model_shape in self.mismatched:
            lines.append(
                f"  mismatch: layer {layer!r} weight {weight!r}: file {file_shape}, "
                f"model {model_shape}"
            )
        if self.missing_in_file:
            lines.append(f"  not in the file (kept as initialised): {self.missing_in_file}")
        if self.unused_in_file:
            lines.append(f"  in the file but not in the model: {self.unused_in_file}")
        if self.pruning_restored:
            lines.append(f"  pruning masks and step restored: {self.pruning_restored}")
        if self.not_restored:
            lines.append(f"  in the file, not restored: {self.not_restored}")
        if self.optimizer:
            lines.append(f"  optimizer: {self.optimizer}")
        return "\n".join(lines)


def _as_str(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _weights_group(h5file: h5py.File) -> h5py.Group:
    return h5file["model_weights"] if "model_weights" in h5file else h5file


def _file_layer_weights(
    group: h5py.Group, filepath: str
) -> dict[str, list[tuple[str, np.ndarray]]]:
    """``{layer name: [(weight name, array), ...]}`` for the file's layers that have weights."""
    if "layer_names" in group.attrs:
        layer_names = [_as_str(n) for n in group.attrs["layer_names"]]
    else:
        layer_names = list(group.keys())
    layers = {}
    for layer_name in layer_names:
        if layer_name not in group:
            raise ValueError(
                f"{filepath}: attribute layer_names lists {layer_name!r} but the file has no such "
                "group"
            )
        layer_group = group[layer_name]
        if "weight_names" in layer_group.attrs:
            names = [_as_str(n) for n in layer_group.attrs["weight_names"]]
        else:  # no attribute: every dataset below the layer group, in storage order
            names = _dataset_paths(layer_group)
        weights = []
        for name in names:
            if name not in layer_group:
                raise ValueError(
                    f"{filepath}: layer {layer_name!r} lists weight {name!r} in weight_names but "
                    "the file has no such dataset"
                )
            weights.append((name, np.asarray(layer_group[name])))
        if weights:
            layers[layer_name] = weights
    return layers


def _dataset_paths(group: h5py.Group) -> list[str]:
    """Paths of all datasets below ``group``, in storage order."""
    paths = []
    group.visititems(
        lambda path, obj: paths.append(path) if isinstance(obj, h5py.Dataset) else None
    )
    return paths


def _short_name(weight_name: str) -> str:
    """``'conv1_1/kernel:0'`` -> ``'kernel'``."""
    return weight_name.split("/")[-1].split(":")[0]


def _order_file_weights(model_weights, file_weights):
    """File weights in the order of the model's weights.

    Matched by name when every model weight name (``kernel``, ``bias``, ``gamma``, ...) is the end
    of exactly one file weight name; otherwise in stored order, which is what Keras 2 itself does.
    """
    file_short = [_short_name(name) for name, _ in file_weights]
    order = []
    for variable in model_weights:
        short = variable.name.split("/")[-1].split(":")[0]
        hits = [i for i, name in enumerate(file_short) if name == short or name.endswith(short)]
        exact = [i for i in hits if file_short[i] == short]
        hits = exact if len(exact) == 1 else hits
        if len(hits) != 1 or hits[0] in order:
            return list(file_weights)
        order.append(hits[0])
    return [file_weights[i] for i in order]


_PRUNE_PREFIX = "prune_low_magnitude_"
_QUANT_PREFIX = "quant_"


@dataclass
class _FileLayer:
    """One layer of the file, toolkit wrappers resolved to the layer they wrap."""

    group: str  # the HDF5 group it came from
    weights: list[tuple[str, np.ndarray]] = field(default_factory=list)  # the layer's own
    masks: list[tuple[str, np.ndarray]] = field(default_factory=list)  # pruning wrapper only
    pruning_step: int | None = None  # pruning wrapper only, the toolkit's counter
    unused: list[str] = field(default_factory=list)  # "group/weight: why", read but not used


def _wrapped_layer_name(group: str, weights) -> str | None:
    """``<name>`` for a toolkit wrapper group ``prune_low_magnitude_<name>`` / ``quant_<name>``
    that holds weights named ``<name>/...``; None for any other group."""
    for prefix in (_PRUNE_PREFIX, _QUANT_PREFIX):
        if group.startswith(prefix):
            inner = group[len(prefix) :]
            if any(name.startswith(f"{inner}/") for name, _ in weights):
                return inner
    return None


def _resolve_wrappers(file_layers: dict) -> dict[str, _FileLayer]:
    """The file's layers keyed by the name of the layer holding the weights: ``<name>`` for a
    toolkit wrapper group, the group name otherwise."""
    resolved = {}
    for group, weights in file_layers.items():
        inner = _wrapped_layer_name(group, weights)
        if inner is None:
            resolved[group] = _FileLayer(group, list(weights))
            continue
        layer = _FileLayer(group)
        pruning = group.startswith(_PRUNE_PREFIX)
        for name, array in weights:
            short = _short_name(name)
            if pruning and short.endswith("mask"):
                layer.masks.append((name, array))
            elif pruning and short == "pruning_step":
                layer.pruning_step = int(np.asarray(array))
            elif pruning and short.endswith("threshold"):
                layer.unused.append(f"{group}/{name}: the toolkit's threshold (the mask holds it)")
            elif name.startswith(f"{inner}/"):
                layer.weights.append((name, array))
            else:
                layer.unused.append(
                    f"{group}/{name}: a quantiser variable of quantisation-aware training"
                )
        resolved[inner] = layer
    return resolved


def _is_pruning_wrapper(layer) -> bool:
    # By class name: model_optimization imports models, not the other way round.
    return type(layer).__name__ == "PruneLowMagnitude"


def _port_pruning_step(toolkit_step: int) -> int:
    """The toolkit's callback sets ``pruning_step`` to the step index and its wrapper adds one
    during the step, so a file holds the number of steps run; `PruneLowMagnitude` holds the index
    of the last step run (-1: none), and the next step is that plus one."""
    return max(int(toolkit_step) - 1, -1)


def load_legacy_weights(model, filepath, skip_mismatch=False, verbose=False) -> LegacyWeightsReport:
    """Load a Keras 2 / original ssd_keras HDF5 weight file into ``model`` by layer name.

    Layers wrapped by the TensorFlow model-optimization toolkit (the pruning fork's
    ``prune_low_magnitude_<name>`` and ``quant_<name>`` groups) load as the layer ``<name>``:

    - into a plain model, its kernel and bias as stored (the toolkit keeps the pruned entries
      zero in the stored kernel); the masks, thresholds and quantiser variables are listed in
      ``report.not_restored``;
    - into a model wrapped with `model_optimization.pruning.prune_low_magnitude`, also each mask
      and the pruning step, so `UpdatePruningStep` continues the schedule where the fork stopped
      (the toolkit's step counter holds the number of steps run; it is stored here as the index
      of the last step run). The thresholds are not needed (the masks hold their result).

    Args:
        model: a Keras 3 model, e.g. from `models.keras_ssd300.ssd_300`, plain or wrapped with
            `prune_low_magnitude`.
        filepath: the ``.h5`` file (full model or weights only).
        skip_mismatch: if True, layers whose weight shapes differ from the file (e.g. class heads
            of another number of classes) are left as they are and listed in the report; if
            False (default) such a layer raises ``ValueError`` before anything is assigned.
        verbose: print the report.

    Returns:
        A `LegacyWeightsReport`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not in the expected layout, or a shape differs and
            ``skip_mismatch`` is False. The message names the file, the layer, the weight and the
            two shapes.

    Example:
        >>> model = ssd_300(image_size=(300, 300, 3), n_classes=20, **SSD300_VOC)
        >>> report = load_legacy_weights(model, "VGG_VOC0712_SSD_300x300_iter_120000.h5")
        >>> print(report)
    """
    path = Path(filepath)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    with h5py.File(path, "r") as h5file:
        file_layers = _resolve_wrappers(_file_layer_weights(_weights_group(h5file), str(path)))
        has_optimizer_state = "optimizer_weights" in h5file

    report = LegacyWeightsReport(filepath=str(path))
    if has_optimizer_state:
        report.not_restored.append(
            "optimizer_weights: the optimizer state is not read here (resume_from_h5 does)"
        )
    # Model layers keyed by the name of the layer holding the weights (a wrapper by its inner one).
    targets = {}
    for layer in model.layers:
        if layer.weights:
            targets[layer.layer.name if _is_pruning_wrapper(layer) else layer.name] = layer
    assignments = []  # (variable, array): assigned only after every check passed
    for key, layer in targets.items():
        if key not in file_layers:
            report.missing_in_file.append(layer.name)
            continue
        stored = file_layers[key]
        wrapper = layer if _is_pruning_wrapper(layer) else None
        variables = list(wrapper.layer.weights) if wrapper is not None else list(layer.weights)
        pairs = _checked_pairs(path, layer.name, variables, stored.weights, skip_mismatch, report)
        if pairs is None:
            continue
        if wrapper is not None and stored.masks:
            masks = _checked_pairs(
                path, layer.name, list(wrapper.masks), stored.masks, skip_mismatch, report
            )
            if masks is None:
                continue
            pairs += masks
            if stored.pruning_step is not None:
                step = _port_pruning_step(stored.pruning_step)
                pairs.append((wrapper.pruning_step, np.asarray(step, "int32")))
            report.pruning_restored.append(layer.name)
        elif stored.masks:
            report.not_restored.extend(
                f"{stored.group}/{name}: the model layer is not wrapped for pruning (the stored "
                "kernel holds the pruned zeros)"
                for name, _ in stored.masks
            )
        report.not_restored.extend(stored.unused)
        assignments.extend(pairs)
        report.loaded.append(layer.name)
    report.unused_in_file = [
        stored.group for key, stored in file_layers.items() if key not in targets
    ]

    for variable, array in assignments:
        variable.assign(np.asarray(array).astype(variable.dtype))
    if verbose:
        print(report)
    return report


def _checked_pairs(path, layer_name, variables, file_weights, skip_mismatch, report):
    """``[(variable, array)]`` for one layer, or None (with the report filled) when the file's
    weights do not fit and ``skip_mismatch``; raises ``ValueError`` otherwise."""
    if len(file_weights) != len(variables):
        if not skip_mismatch:
            raise ValueError(
                f"{path}: layer {layer_name!r} has {len(file_weights)} weights in the file "
                f"({[w for w, _ in file_weights]}) but {len(variables)} in the model "
                f"({[v.name for v in variables]})"
            )
        report.mismatched.append(
            (layer_name, "(number of weights)", (len(file_weights),), (len(variables),))
        )
        return None
    ordered = _order_file_weights(variables, file_weights)
    fits = True
    for variable, (weight_name, array) in zip(variables, ordered):
        if tuple(array.shape) != tuple(variable.shape):
            if not skip_mismatch:
                raise ValueError(
                    f"{path}: layer {layer_name!r} weight {weight_name!r} has shape "
                    f"{tuple(array.shape)} in the file but {tuple(variable.shape)} in the "
                    "model (pass skip_mismatch=True to leave such layers as they are)"
                )
            report.mismatched.append(
                (layer_name, weight_name, tuple(array.shape), tuple(variable.shape))
            )
            fits = False
    return [(v, array) for v, (_, array) in zip(variables, ordered)] if fits else None


def pruning_schedules_from_h5(filepath) -> dict:
    """The pruning schedules of the fork's wrapped layers, from a Keras 2 full-model file.

    The toolkit stores each ``PruneLowMagnitude`` layer's schedule in the file's ``model_config``
    as ``{"class_name": "PolynomialDecay" | "ConstantSparsity", "config": {...}}``, with the same
    arguments as `model_optimization.pruning.PolynomialDecay` / ``ConstantSparsity``. Wrap the
    model with them to continue the fork's schedule:
    ``prune_low_magnitude(model, pruning_schedules_from_h5(path))``, then `resume_from_h5`.

    Returns:
        ``{inner layer name: schedule}``.

    Raises:
        ValueError: naming the file, when it has no ``model_config``, no wrapped layer, or a
            schedule class other than those two.
    """
    from model_optimization import pruning  # here: model_optimization imports models

    with h5py.File(filepath, "r") as h5file:
        model_config = _read_json_attr(h5file, "model_config")
    if model_config is None:
        raise ValueError(f"{filepath}: no model_config attribute (not a full-model file)")
    schedules = {}
    pending = [model_config]
    while pending:  # every dict in the config, nested models included
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            if item.get("class_name") == "PruneLowMagnitude" and "config" in item:
                config = item["config"]
                schedule = config.get("pruning_schedule") or {}
                kind = schedule.get("class_name")
                if kind not in ("PolynomialDecay", "ConstantSparsity"):
                    raise ValueError(
                        f"{filepath}: layer {config.get('name')!r} has pruning_schedule "
                        f"class_name={kind!r}, not PolynomialDecay or ConstantSparsity"
                    )
                inner = config["layer"]["config"]["name"]
                schedules[inner] = getattr(pruning, kind)(**schedule["config"])
            pending.extend(item.values())
    if not schedules:
        raise ValueError(f"{filepath}: model_config has no PruneLowMagnitude layer")
    return schedules


# --------------------------------------------------------------------------------------------
# Resuming training from a Keras 2 full-model file
# --------------------------------------------------------------------------------------------

# Keras 2 optimizer arguments that Keras 3 takes under the same name, per optimizer class.
_OPTIMIZER_ARGUMENTS = {
    "Adam": ("beta_1", "beta_2", "epsilon", "amsgrad"),
    "SGD": ("momentum", "nesterov"),
    "RMSprop": ("rho", "epsilon", "momentum", "centered"),
    "Adagrad": ("epsilon", "initial_accumulator_value"),
    "Adadelta": ("rho", "epsilon"),
    "Adamax": ("beta_1", "beta_2", "epsilon"),
    "Nadam": ("beta_1", "beta_2", "epsilon"),
}


def _read_json_attr(h5file: h5py.File, name: str):
    value = h5file.attrs.get(name)
    if value is None:
        return None
    return json.loads(_as_str(value))


def optimizer_from_training_config(
    training_config: dict, filepath=""
) -> keras.optimizers.Optimizer:
    """The Keras 3 optimizer equal to a Keras 2 file's ``training_config['optimizer_config']``.

    The learning rate is ``lr`` (Keras 2.1) or ``learning_rate`` (``tf.keras``); a Keras 2
    ``decay`` (``lr / (1 + decay * iterations)``) becomes the same
    ``keras.optimizers.schedules.InverseTimeDecay``; ``epsilon=None`` (Keras 2.1's default) is
    Keras' 1e-7.

    Raises:
        ValueError: naming the file and the value, for an optimizer class Keras 3 does not have.
    """
    config = training_config.get("optimizer_config") or {}
    class_name = config.get("class_name")
    arguments = config.get("config", {})
    if class_name not in _OPTIMIZER_ARGUMENTS:
        raise ValueError(
            f"{filepath}: training_config optimizer_config class_name={class_name!r} is not one of "
            f"{sorted(_OPTIMIZER_ARGUMENTS)}"
        )
    learning_rate = arguments.get("learning_rate", arguments.get("lr", 0.001))
    if isinstance(learning_rate, dict):
        learning_rate = keras.optimizers.schedules.deserialize(learning_rate)
    decay = float(arguments.get("decay") or 0.0)
    if decay > 0:
        learning_rate = keras.optimizers.schedules.InverseTimeDecay(
            float(learning_rate), decay_steps=1, decay_rate=decay
        )
    kwargs = {
        key: arguments[key]
        for key in _OPTIMIZER_ARGUMENTS[class_name]
        if arguments.get(key) is not None
    }
    return getattr(keras.optimizers, class_name)(learning_rate=learning_rate, **kwargs)


def _slot_lists(optimizer) -> tuple[list[list], str]:
    """The optimizer's per-variable state lists in Keras 2's stored order, and what is left out."""
    kind = type(optimizer).__name__
    if kind == "Adam":
        slots = [optimizer._momentums, optimizer._velocities]
        if optimizer.amsgrad:
            slots.append(optimizer._velocity_hats)
        return slots, ""
    if kind == "SGD":
        return [optimizer.momentums] if optimizer.momentums else [], ""
    return [], f"the {kind} slot variables are not mapped (only Adam's and SGD's are)"


def _restore_optimizer_state(optimizer, model, h5file, filepath) -> str:
    """Sets iterations and the slot variables from the file's ``optimizer_weights``.

    Keras 2 stores ``[iterations] + slots`` (``Adam/iterations:0`` in Keras 2.1, ``Adam/iter:0`` in
    ``tf.keras``), each slot kind for every trainable weight in the order
    of ``model.trainable_weights`` (Adam: all ``m``, all ``v``, then in Keras 2.1-2.2 a ``vhat``
    per weight, of shape ``(1,)`` without amsgrad; SGD: the momenta). They are matched by position
    to this model's trainable variables, every shape checked; on any mismatch nothing is set.

    Returns:
        A sentence saying what was restored, or why not.
    """
    variables = model.trainable_variables
    optimizer.build(variables)
    if "optimizer_weights" not in h5file:
        return (
            f"{type(optimizer).__name__} state not restored: {filepath} has no optimizer_weights "
            "(saved without the optimizer); training restarts its moments and step count"
        )
    group = h5file["optimizer_weights"]
    names = [_as_str(n) for n in group.attrs.get("weight_names", [])] or _dataset_paths(group)
    arrays = [np.asarray(group[name]) for name in names]
    if not arrays or _short_name(names[0]) not in ("iterations", "iter"):
        return (
            f"{type(optimizer).__name__} state not restored: the first optimizer weight of "
            f"{filepath} is {names[:1]}, not the iteration count"
        )
    slot_lists, left_out = _slot_lists(optimizer)
    stored = arrays[1:]
    n = len(variables)
    if len(stored) < n * len(slot_lists):
        return (
            f"{type(optimizer).__name__} state not restored: {filepath} holds {len(stored)} "
            f"optimizer slot arrays, the model has {n} trainable variables x {len(slot_lists)} "
            "slots"
        )
    pairs = []
    for k, slots in enumerate(slot_lists):
        for i, (slot, variable) in enumerate(zip(slots, variables)):
            array = stored[k * n + i]
            if tuple(array.shape) != tuple(slot.shape):
                return (
                    f"{type(optimizer).__name__} state not restored: {filepath} optimizer weight "
                    f"{names[1 + k * n + i]!r} has shape {tuple(array.shape)}, the slot of "
                    f"{variable.path!r} {tuple(slot.shape)} (the model's trainable variables "
                    "are not those the file was trained with, in that order)"
                )
            pairs.append((slot, array))
    optimizer.iterations.assign(int(arrays[0]))
    for slot, array in pairs:
        slot.assign(array.astype(slot.dtype))
    restored = f"iterations={int(arrays[0])} and {len(slot_lists)} slot(s) x {n} variables"
    return f"{type(optimizer).__name__} state restored ({restored})" + (
        f"; {left_out}" if left_out else ""
    )


def resume_from_h5(
    model, filepath, loss=None, skip_mismatch=False, verbose=False
) -> LegacyWeightsReport:
    """Continue training from a Keras 2 full-model ``.h5`` checkpoint, in one call.

    For the files the original notebooks write (``ModelCheckpoint`` of a model compiled with
    ``loss=ssd_loss.compute_loss``) and the pruning fork's (layers wrapped by the TensorFlow
    model-optimization toolkit). Build ``model`` as the notebook did (for a pruned checkpoint, wrap
    it with `prune_low_magnitude` and the schedule), then:

    1. the weights are loaded by name with `load_legacy_weights` (masks and pruning step too);
    2. the model is compiled with the file's optimizer (class and hyperparameters of its
       ``training_config``, see `optimizer_from_training_config`) and ``loss``;
    3. the optimizer's step count and moments are set from the file's ``optimizer_weights``
       (Adam, SGD; see `_restore_optimizer_state`). ``report.optimizer`` says what was restored
       or why not.

    Not in the file, so not restored: the epoch (pass ``initial_epoch`` to ``fit``, e.g. from the
    checkpoint's file name) and callback state (learning-rate schedule, early stopping). The file
    names the loss only (``'compute_loss'``), so its arguments come from ``loss``. The model is not
    rebuilt from the file's ``model_config``: its ``Lambda`` layers hold Python bytecode of the
    interpreter that wrote them, which Keras 3 loads only with ``safe_mode=False`` and only on that
    Python version, and its ``AnchorBoxes`` configs lack the steps and offsets (a bug of the
    original).

    Args:
        model: the Keras 3 model to train, plain or wrapped for pruning.
        filepath: the Keras 2 ``.h5`` full-model file.
        loss: the loss to compile with; default ``SSDLoss(neg_pos_ratio=3, alpha=1.0)`` (the
            notebooks' values), passed as its ``compute_loss`` as they did.
        skip_mismatch: as for `load_legacy_weights`.
        verbose: print the report.

    Returns:
        The `LegacyWeightsReport` of the weights, with ``optimizer`` filled.

    Raises:
        ValueError: the file has no ``training_config`` (a weights-only file: use
            `load_legacy_weights` and compile yourself), or an optimizer Keras 3 lacks.

    Example:
        >>> model = ssd_300(image_size=(300, 300, 3), n_classes=20, mode="training", **SSD300_VOC)
        >>> report = resume_from_h5(model, "ssd300_pascal_07+12_epoch-08_loss-4.4898.h5")
        >>> model.fit(train_data, initial_epoch=8, epochs=120, callbacks=callbacks)
    """
    report = load_legacy_weights(model, filepath, skip_mismatch=skip_mismatch)
    with h5py.File(filepath, "r") as h5file:
        training_config = _read_json_attr(h5file, "training_config")
        if training_config is None:
            raise ValueError(
                f"{filepath}: no training_config attribute (a weights-only file or a model saved "
                "without compiling); load it with load_legacy_weights and compile the model"
            )
        optimizer = optimizer_from_training_config(training_config, filepath)
        if loss is None:
            loss = SSDLoss(neg_pos_ratio=3, alpha=1.0)
        model.compile(
            optimizer=optimizer, loss=loss.compute_loss if isinstance(loss, SSDLoss) else loss
        )
        report.optimizer = _restore_optimizer_state(optimizer, model, h5file, filepath)
    if verbose:
        print(report)
    return report
