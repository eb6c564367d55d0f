"""Load weights of the original ssd_keras (Keras 2 HDF5 layout) into our models, by layer name.

The ported Caffe weights that ssd_keras users have (``VGG_VOC0712_SSD_300x300_iter_120000.h5``, the
reduced VGG16 base ``VGG_ILSVRC_16_layers_fc_reduced.h5``, their own Keras 2 checkpoints) are HDF5
files in the Keras 2 layout:

- a full-model file (``model.save``) holds a group ``model_weights``; a weights-only file
  (``model.save_weights``) holds the same content at its root;
- that group lists its layers in the attribute ``layer_names``; each layer is a group
  ``<layer>`` whose attribute ``weight_names`` lists its weights in order, stored as datasets
  at those paths inside the layer group, e.g. ``model_weights/conv1_1/conv1_1/kernel:0``.

Keras 3 can read such files (``model.load_weights(path)`` for ``.h5``), but it says little about
what it skipped. `load_legacy_weights` matches layers by name, checks every shape, and returns a
`LegacyWeightsReport` saying what was loaded, what was missing on either side and what did not
fit. Conv kernels are stored ``(kh, kw, in, out)`` by Keras 2 with TensorFlow, as in Keras 3; the
Theano kernel orientation of Keras 1 files is not converted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np


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
    """

    filepath: str
    loaded: list[str] = field(default_factory=list)
    missing_in_file: list[str] = field(default_factory=list)
    unused_in_file: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, str, tuple, tuple]] = field(default_factory=list)

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


def load_legacy_weights(model, filepath, skip_mismatch=False, verbose=False) -> LegacyWeightsReport:
    """Load a Keras 2 / original ssd_keras HDF5 weight file into ``model`` by layer name.

    Args:
        model: a Keras 3 model, e.g. from `models.keras_ssd300.ssd_300`.
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
        file_layers = _file_layer_weights(_weights_group(h5file), str(path))

    report = LegacyWeightsReport(filepath=str(path))
    model_layers = {layer.name: layer for layer in model.layers if layer.weights}
    assignments = []  # (variable, array): assigned only after every check passed
    for name, layer in model_layers.items():
        if name not in file_layers:
            report.missing_in_file.append(name)
            continue
        file_weights = file_layers[name]
        if len(file_weights) != len(layer.weights):
            problem = (
                name,
                "(number of weights)",
                (len(file_weights),),
                (len(layer.weights),),
            )
            if not skip_mismatch:
                raise ValueError(
                    f"{path}: layer {name!r} has {len(file_weights)} weights in the file "
                    f"({[w for w, _ in file_weights]}) but {len(layer.weights)} in the model "
                    f"({[v.name for v in layer.weights]})"
                )
            report.mismatched.append(problem)
            continue
        ordered = _order_file_weights(layer.weights, file_weights)
        layer_ok = True
        for variable, (weight_name, array) in zip(layer.weights, ordered):
            if tuple(array.shape) != tuple(variable.shape):
                if not skip_mismatch:
                    raise ValueError(
                        f"{path}: layer {name!r} weight {weight_name!r} has shape "
                        f"{tuple(array.shape)} in the file but {tuple(variable.shape)} in the "
                        "model (pass skip_mismatch=True to leave such layers as they are)"
                    )
                report.mismatched.append(
                    (name, weight_name, tuple(array.shape), tuple(variable.shape))
                )
                layer_ok = False
        if layer_ok:
            assignments.extend(zip(layer.weights, (array for _, array in ordered)))
            report.loaded.append(name)
    report.unused_in_file = [name for name in file_layers if name not in model_layers]

    for variable, array in assignments:
        variable.assign(array.astype(variable.dtype))
    if verbose:
        print(report)
    return report
