"""Sub-sample the classifier heads of a trained SSD for a new set of classes (transfer learning).

A trained SSD's classifier heads (``*_mbox_conf`` in SSD300/SSD512, ``classes4`` ...
``classes7`` in SSD7) are 3x3 convolutions with ``n_boxes * (n_classes + 1)`` output channels:
channel ``box * (n_classes + 1) + class`` is the logit of ``class`` (0 = background) for anchor
``box`` of each cell. To fine-tune on a dataset with other classes, `sample_ssd_weights` keeps,
for every anchor box, the channels of the chosen classes (in the chosen order), through
`misc_utils.tensor_sampling_utils.sample_tensors`, leaves every other layer as it is, and writes
a weights file that a model built with the new ``n_classes`` loads directly. This is what the
original ssd_keras ``weight_sampling_tutorial.ipynb`` did by hand on an HDF5 file.

Because only whole output channels are selected, the new model's logits for a kept class are
exactly the old model's logits for that class; the softmax scores change only because they are
renormalised over fewer classes. Box offsets and anchors do not change at all.

Sources:

- a Keras model (e.g. from `models.keras_ssd7.build_model`, trained);
- a ``.keras`` file (``model.save``);
- a Keras 3 ``.weights.h5`` file (``model.save_weights``): it stores no layer names, so it is
  read through ``old_model``, a model built with the old ``n_classes``;
- a Keras 2 HDF5 file of the original ssd_keras (full model or weights only), e.g. the ported
  ``VGG_coco_SSD_300x300_iter_400000.h5``.

Outputs, by the suffix of ``output_path``:

- ``.h5`` / ``.hdf5``: a weights-only file in the Keras 2 layout (layer groups by name, the
  ``layer_names`` and ``weight_names`` attributes), as the original tutorial wrote. Load it
  with ``new_model.load_weights(path, by_name=True)`` or
  ``models.legacy_weights.load_legacy_weights(new_model, path)``; no ``new_model`` is needed to
  write it.
- ``.weights.h5`` or ``.keras``: written by ``new_model.save_weights`` / ``new_model.save``
  after the sampled weights were set in ``new_model`` (required for these suffixes); load with
  ``model.load_weights(path)`` / ``keras.models.load_model(path)``.

This module imports no Keras at import time; Keras is imported when a model or a ``.keras``
file has to be read or written.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from misc_utils.tensor_sampling_utils import sample_tensors

#: Names of the classifier (confidence) heads: SSD300/SSD512 ``<source>_mbox_conf`` and SSD7
#: ``classes<i>``.
CONF_LAYER_PATTERN = re.compile(r"^(?:.+_mbox_conf|classes\d+)$")

# {layer name: [(weight name, array), ...]} in layer order; weight names as Keras 2 wrote them
# ("classes4/kernel:0").
LayerWeights = dict[str, list[tuple[str, np.ndarray]]]


@dataclass
class WeightSamplingReport:
    """What `sample_ssd_weights` did.

    Attributes:
        source: the model name or the file that was read.
        output_path: the file written, or None.
        old_classes: the class names of the source, background first.
        new_classes: the kept class names, background first, in the new order.
        class_indices: for each new class, its index in ``old_classes``.
        conf_layers: ``{layer: (old kernel shape, new kernel shape)}`` of every sampled head.
        n_boxes: ``{layer: boxes per cell}`` of every sampled head.
        unused_in_new_model: layers of the source that ``new_model`` has no layer for (e.g. the
            ``fc8`` of a VGG16 file); empty without ``new_model``.
        layers: the sampled weights, ``{layer: [(weight name, array), ...]}``.
    """

    source: str
    output_path: str | None
    old_classes: list[str]
    new_classes: list[str]
    class_indices: list[int]
    conf_layers: dict[str, tuple[tuple, tuple]] = field(default_factory=dict)
    n_boxes: dict[str, int] = field(default_factory=dict)
    unused_in_new_model: list[str] = field(default_factory=list)
    layers: LayerWeights = field(default_factory=dict, repr=False)

    @property
    def n_classes(self) -> int:
        """The ``n_classes`` to build the new model with (background excluded)."""
        return len(self.new_classes) - 1

    def __str__(self) -> str:
        lines = [
            f"Sampled {len(self.conf_layers)} classifier layers of {self.source}: "
            f"{len(self.old_classes) - 1} -> {self.n_classes} classes "
            f"{self.new_classes[1:]} (old indices {self.class_indices[1:]}).",
        ]
        for name, (old, new) in self.conf_layers.items():
            lines.append(f"  {name}: {self.n_boxes[name]} boxes, kernel {old} -> {new}")
        if self.unused_in_new_model:
            lines.append(f"  not in the new model (ignored): {self.unused_in_new_model}")
        if self.output_path:
            lines.append(f"  written to {self.output_path}")
        return "\n".join(lines)


def class_indices(old_classes: Sequence[str], keep_classes: Sequence) -> list[int]:
    """Indices into ``old_classes`` of ``keep_classes`` (names or indices, background first).

    Args:
        old_classes: the source model's class names, background first, e.g.
            ``['background', 'circle', 'square', ...]``.
        keep_classes: the classes of the new model, background first, each a name from
            ``old_classes`` or an index into it; any order (the new model's class ids follow
            it), no repeats.

    Returns:
        The list of indices, starting with 0.

    Raises:
        ValueError: a class is not in ``old_classes``, an index is out of range, a class is
            repeated, the background is not first, or fewer than 2 entries are given.
    """
    old_classes = [str(c) for c in old_classes]
    if len(old_classes) < 2 or len(set(old_classes)) != len(old_classes):
        raise ValueError(
            "old_classes must list the background and at least one class, without repeats, "
            f"got {old_classes!r}"
        )
    if isinstance(keep_classes, (str, bytes)) or len(keep_classes) < 2:
        raise ValueError(
            "keep_classes must list the background first and at least one class, "
            f"got {keep_classes!r}"
        )
    indices = []
    for position, entry in enumerate(keep_classes):
        if isinstance(entry, (int, np.integer)) and not isinstance(entry, bool):
            if not 0 <= entry < len(old_classes):
                raise ValueError(
                    f"keep_classes[{position}] = {entry} is not an index into old_classes "
                    f"(0 ... {len(old_classes) - 1})"
                )
            indices.append(int(entry))
        elif isinstance(entry, str):
            if entry not in old_classes:
                raise ValueError(
                    f"keep_classes[{position}] = {entry!r} is not one of the old classes "
                    f"{old_classes}"
                )
            indices.append(old_classes.index(entry))
        else:
            raise ValueError(
                f"keep_classes[{position}] must be a class name or an index, got {entry!r}"
            )
    if indices[0] != 0:
        raise ValueError(
            f"keep_classes must start with the background class {old_classes[0]!r} (index 0), "
            f"got {keep_classes[0]!r}"
        )
    repeated = sorted({old_classes[i] for i in indices if indices.count(i) > 1})
    if repeated:
        raise ValueError(f"keep_classes repeats {repeated}: each class can be kept only once")
    return indices


def sample_ssd_weights(
    source,
    old_classes: Sequence[str],
    keep_classes: Sequence,
    output_path: str | os.PathLike | None = None,
    *,
    new_model=None,
    old_model=None,
    conf_layers: Sequence[str] | None = None,
    verbose: bool = False,
) -> WeightSamplingReport:
    """Keeps the classifier channels of ``keep_classes`` in every SSD class head.

    For each classifier layer (default: every layer named like `CONF_LAYER_PATTERN`) with
    ``n_boxes * len(old_classes)`` output channels, the kernel ``(kh, kw, in, n_boxes * n_old)``
    and bias ``(n_boxes * n_old,)`` become ``(kh, kw, in, n_boxes * n_new)`` and
    ``(n_boxes * n_new,)``, keeping channel ``box * n_old + class_indices[j]`` as channel
    ``box * n_new + j``. All other layers are copied unchanged.

    Args:
        source: a Keras model, or the path of a ``.keras`` file, a Keras 3 ``.weights.h5``
            file (needs ``old_model``) or an original ssd_keras / Keras 2 ``.h5`` file.
        old_classes: the source's class names, background first (``n_classes + 1`` names).
        keep_classes: the new model's classes, background first: names from ``old_classes``
            or indices into it, in the new order.
        output_path: where to write the sampled weights (see the module docstring for the
            formats), or None to only return them (and set them in ``new_model``).
        new_model: optional model built with ``n_classes = len(keep_classes) - 1`` and
            otherwise the source's configuration; the sampled weights are set in it (by layer
            name, every shape checked first). Required for ``.weights.h5`` / ``.keras``
            outputs.
        old_model: a model of the source's architecture (built with the old ``n_classes``),
            needed to read a Keras 3 ``.weights.h5`` file, which holds no layer names; the
            file's weights are loaded into it.
        conf_layers: names of the classifier layers, if they are not named like
            `CONF_LAYER_PATTERN` (e.g. an SSD on another base network).
        verbose: print the report.

    Returns:
        A `WeightSamplingReport` (``report.n_classes`` is the new ``n_classes``).

    Raises:
        FileNotFoundError: ``source`` is a path that does not exist.
        ValueError: a class is not in ``old_classes`` (or the background is not first); the
            source has no classifier layer; a classifier layer's channels do not fit
            ``len(old_classes)`` and its box layer (the class list does not belong to these
            weights); ``new_model`` does not fit the sampled weights; the source file cannot be
            read; ``output_path`` is the source file; a required model is missing.

    Example:
        >>> old = build_model(**{**SSD7_UDACITY, "n_classes": 5})  # trained on 5 classes
        >>> report = sample_ssd_weights(
        ...     old, ["background", "car", "truck", "pedestrian", "bicyclist", "light"],
        ...     ["background", "car", "pedestrian"], "ssd7_2_classes.h5")
        >>> new = build_model(**{**SSD7_UDACITY, "n_classes": report.n_classes})
        >>> new.load_weights("ssd7_2_classes.h5", by_name=True)
    """
    indices = class_indices(old_classes, keep_classes)
    old_classes = [str(c) for c in old_classes]
    source_name, layers, attrs = read_ssd_weights(source, old_model=old_model)
    n_old = len(old_classes)

    if conf_layers is None:
        names = [name for name in layers if CONF_LAYER_PATTERN.match(name)]
        if not names:
            raise ValueError(
                f"{source_name}: no classifier layer (named '<source>_mbox_conf' or "
                f"'classes<i>') among the layers with weights {list(layers)}; pass conf_layers="
            )
    else:
        names = list(conf_layers)
        missing = [name for name in names if name not in layers]
        if missing or not names:
            raise ValueError(
                f"{source_name}: conf_layers {missing or names} are not layers with weights "
                f"of the source ({list(layers)})"
            )

    report = WeightSamplingReport(
        source=source_name,
        output_path=None,
        old_classes=old_classes,
        new_classes=[old_classes[i] for i in indices],
        class_indices=indices,
    )
    sampled = dict(layers)
    for name in names:
        kernel_at, bias_at = _kernel_and_bias(layers[name], name, source_name)
        kernel = layers[name][kernel_at][1]
        n_out = kernel.shape[-1]
        n_boxes = _boxes_per_cell(layers, name, n_out, n_old, source_name)
        # Channel box * n_old + class of the old head -> box * n_new + j of the new one.
        channels = [box * n_old + c for box in range(n_boxes) for c in indices]
        tensors = [kernel] if bias_at is None else [kernel, layers[name][bias_at][1]]
        new_tensors = sample_tensors(
            tensors,
            [*kernel.shape[:-1], channels],
            axes=None if bias_at is None else [[3]],
            init=["gaussian"] * len(tensors),
        )
        weights = list(layers[name])
        weights[kernel_at] = (weights[kernel_at][0], new_tensors[0])
        if bias_at is not None:
            weights[bias_at] = (weights[bias_at][0], new_tensors[1])
        sampled[name] = weights
        report.conf_layers[name] = (tuple(kernel.shape), tuple(new_tensors[0].shape))
        report.n_boxes[name] = n_boxes
    report.layers = sampled

    if new_model is not None:
        report.unused_in_new_model = set_weights_by_name(new_model, sampled, source_name)
    if output_path is not None:
        report.output_path = _write(output_path, source, sampled, attrs, report, new_model)
    if verbose:
        print(report)
    return report


def read_ssd_weights(source, old_model=None) -> tuple[str, LayerWeights, dict]:
    """The weights of a model or a weights file, by layer name.

    Args:
        source: a Keras model or the path of a ``.keras``, Keras 3 ``.weights.h5`` or Keras 2
            ``.h5`` file (see `sample_ssd_weights`).
        old_model: the model to read a Keras 3 ``.weights.h5`` file through.

    Returns:
        ``(source name, {layer: [(weight name, array), ...]}, attributes)``: only layers with
        weights, in layer order; weight names in the Keras 2 form ``'<layer>/<weight>:0'``;
        the attributes are the Keras 2 file's ``keras_version`` / ``backend`` (empty
        otherwise).
    """
    if hasattr(source, "layers") and hasattr(source, "get_layer"):
        return f"model {source.name!r}", _model_layer_weights(source), {}
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    if zipfile.is_zipfile(path):
        return str(path), _model_layer_weights(_load_keras_file(path)), {}
    try:
        h5file = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(
            f"{path} is neither a .keras archive nor an HDF5 weights file ({error})"
        ) from None
    with h5file:
        keras3 = (
            "layer_names" not in h5file.attrs
            and "model_weights" not in h5file
            and "layers" in h5file
            and "vars" in h5file
        )
        if not keras3:
            from models.legacy_weights import _file_layer_weights, _weights_group

            group = _weights_group(h5file)
            attrs = {
                key: group.attrs[key] for key in ("keras_version", "backend") if key in group.attrs
            }
            return str(path), _file_layer_weights(group, str(path)), attrs
    if old_model is None:
        raise ValueError(
            f"{path} is a Keras 3 weights file: it stores no layer names, so pass old_model=, "
            "a model built with the old n_classes, to read it (or pass that model, with the "
            "weights loaded, as the source)"
        )
    try:
        old_model.load_weights(str(path))
    except (ValueError, KeyError) as error:
        raise ValueError(
            f"{path} does not fit old_model {old_model.name!r} (was it built with the old "
            f"n_classes and the same configuration?): {_short_keras_error(error)}"
        ) from None
    return str(path), _model_layer_weights(old_model), {}


def set_weights_by_name(model, layers: LayerWeights, source_name: str = "weights") -> list[str]:
    """Sets ``layers`` in ``model`` by layer name, after checking every layer and shape.

    Every layer of ``model`` that has weights must be in ``layers`` with the same number of
    weights and the same shapes; nothing is assigned unless all fit.

    Args:
        model: the Keras model.
        layers: ``{layer: [(weight name, array), ...]}``, weights in the layer's order.
        source_name: named in the error messages.

    Returns:
        The names in ``layers`` that ``model`` has no layer for.

    Raises:
        ValueError: a model layer is missing from ``layers``, or a count or shape differs (the
            message names the layer, the weight and both shapes).
    """
    model_layers = {layer.name: layer for layer in model.layers if layer.weights}
    missing = [name for name in model_layers if name not in layers]
    if missing:
        raise ValueError(
            f"model {model.name!r} does not fit {source_name}: its layers {missing} have no "
            "weights there (is it the same kind of SSD?)"
        )
    assignments = []
    for name, layer in model_layers.items():
        weights = layers[name]
        if len(weights) != len(layer.weights):
            raise ValueError(
                f"model {model.name!r} does not fit {source_name}: layer {name!r} has "
                f"{len(layer.weights)} weights in the model but {len(weights)} in the source"
            )
        for variable, (weight_name, array) in zip(layer.weights, weights):
            if tuple(variable.shape) != tuple(array.shape):
                raise ValueError(
                    f"model {model.name!r} does not fit {source_name}: layer {name!r} weight "
                    f"{weight_name!r} has shape {tuple(array.shape)} but "
                    f"{tuple(variable.shape)} in the model (build the new model with "
                    "n_classes = len(keep_classes) - 1 and the source's anchor configuration)"
                )
            assignments.append((variable, array))
    for variable, array in assignments:
        variable.assign(np.asarray(array, dtype=variable.dtype))
    return [name for name in layers if name not in model_layers]


def write_legacy_weights(
    path: str | os.PathLike, layers: LayerWeights, attrs: dict | None = None
) -> None:
    """Writes ``layers`` as a Keras 2 weights-only HDF5 file (``model.save_weights`` layout).

    The root holds the attribute ``layer_names`` and one group per layer, whose attribute
    ``weight_names`` lists its datasets in order (``'<layer>/<weight>:0'``). Keras 3 reads it
    with ``model.load_weights(path, by_name=True)``, and so does
    `models.legacy_weights.load_legacy_weights`.

    Args:
        path: the file to write (overwritten).
        layers: ``{layer: [(weight name, array), ...]}``.
        attrs: extra root attributes (strings or numbers).
    """
    with h5py.File(path, "w") as h5file:
        h5file.attrs["keras_version"] = b"2.1.5"
        h5file.attrs["backend"] = b"tensorflow"
        for key, value in (attrs or {}).items():
            h5file.attrs[key] = value
        h5file.attrs["layer_names"] = np.array([name.encode("utf8") for name in layers])
        for name, weights in layers.items():
            group = h5file.create_group(name)
            group.attrs["weight_names"] = np.array([w.encode("utf8") for w, _ in weights])
            for weight_name, array in weights:
                group.create_dataset(weight_name, data=np.asarray(array))


def _model_layer_weights(model) -> LayerWeights:
    layers = {}
    for layer in model.layers:
        if layer.weights:
            layers[layer.name] = [
                (f"{layer.name}/{variable.name}:0", np.asarray(variable))
                for variable in layer.weights
            ]
    return layers


def _short_keras_error(error: Exception) -> str:
    """Keras' load error without the variable values it prints (they run to pages)."""
    text = str(error)
    shapes = re.findall(r"variable\.shape=\([^)]*\), Received: value\.shape=\([^)]*\)", text)
    objects = re.findall(r"<\w+ name=([^,>]+)", text.split("List of objects")[-1])
    short = text.splitlines()[0] if text else type(error).__name__
    if shapes:
        short += f" First mismatch: {shapes[0]}."
    if "List of objects" in text and objects:
        short += f" Layers not loaded: {sorted(set(objects))}."
    return short


def _load_keras_file(path: Path):
    import keras

    import models  # noqa: F401  (registers the SSD layers, so no custom_objects are needed)

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds for a bad archive
        raise ValueError(f"{path}: could not load the .keras model: {error}") from None


def _short_name(weight_name: str) -> str:
    """``'classes4/kernel:0'`` -> ``'kernel'``."""
    return weight_name.split("/")[-1].split(":")[0]


def _kernel_and_bias(weights, name: str, source_name: str) -> tuple[int, int | None]:
    """Positions of the 4-D kernel and the 1-D bias in a classifier layer's weights."""
    shorts = [_short_name(w) for w, _ in weights]
    kernels = [i for i, (_, a) in enumerate(weights) if a.ndim == 4]
    biases = [i for i, (_, a) in enumerate(weights) if a.ndim == 1]
    if "kernel" in shorts and shorts.count("kernel") == 1:
        kernels = [shorts.index("kernel")]
    if "bias" in shorts and shorts.count("bias") == 1:
        biases = [shorts.index("bias")]
    if len(kernels) != 1 or len(biases) > 1 or len(weights) != len(kernels) + len(biases):
        raise ValueError(
            f"{source_name}: layer {name!r} is not a convolution (one 4-D kernel and an optional "
            f"bias), its weights are {[(w, a.shape) for w, a in weights]}"
        )
    kernel, bias = kernels[0], biases[0] if biases else None
    if bias is not None and weights[bias][1].shape[0] != weights[kernel][1].shape[-1]:
        raise ValueError(
            f"{source_name}: layer {name!r} has a kernel of shape {weights[kernel][1].shape} "
            f"but a bias of shape {weights[bias][1].shape}"
        )
    return kernel, bias


def _box_layer_name(conf_name: str) -> str | None:
    """The localisation layer next to a classifier layer: ``*_mbox_loc`` or ``boxes<i>``."""
    if conf_name.endswith("_mbox_conf"):
        return conf_name[: -len("_conf")] + "_loc"
    match = re.fullmatch(r"classes(\d+)", conf_name)
    return f"boxes{match.group(1)}" if match else None


def _boxes_per_cell(layers: LayerWeights, name: str, n_out: int, n_old: int, source: str) -> int:
    """Boxes per cell of a classifier layer, checked against ``n_old`` and its box layer."""
    loc_name = _box_layer_name(name)
    n_boxes_loc = None
    if loc_name in layers:
        loc_kernel = [a for _, a in layers[loc_name] if a.ndim == 4]
        if len(loc_kernel) == 1 and loc_kernel[0].shape[-1] % 4 == 0:
            n_boxes_loc = loc_kernel[0].shape[-1] // 4
    if n_out % n_old or (n_boxes_loc is not None and n_out != n_boxes_loc * n_old):
        per_box = f", i.e. {n_out / n_boxes_loc:g} scores per box" if n_boxes_loc else ""
        boxes = (
            f" for the {n_boxes_loc} boxes per cell of {loc_name!r}{per_box}" if n_boxes_loc else ""
        )
        raise ValueError(
            f"{source}: layer {name!r} has {n_out} output channels{boxes}, which does not fit "
            f"old_classes with {n_old} entries (background + {n_old - 1} classes): the class "
            "list does not belong to these weights"
        )
    return n_out // n_old


def _write(output_path, source, layers: LayerWeights, attrs: dict, report, new_model) -> str:
    path = Path(output_path)
    if (
        isinstance(source, (str, os.PathLike))
        and path.exists()
        and path.resolve() == Path(source).resolve()
    ):
        raise ValueError(f"output_path {str(path)!r} is the source file; choose another path")
    name = path.name.lower()
    if name.endswith(".weights.h5") or name.endswith(".keras"):
        if new_model is None:
            kind = ".keras" if name.endswith(".keras") else ".weights.h5"
            raise ValueError(
                f"output_path {str(path)!r}: a Keras 3 {kind} file is written from the new "
                f"model; pass new_model= (built with n_classes={report.n_classes}), or write a "
                "'.h5' file instead"
            )
        if name.endswith(".keras"):
            new_model.save(path)
        else:
            new_model.save_weights(path)
    elif name.endswith(".h5") or name.endswith(".hdf5"):
        classes = json.dumps(report.new_classes).encode("utf8")
        write_legacy_weights(path, layers, {**attrs, "ssd_keras_classes": classes})
    else:
        raise ValueError(
            f"output_path {str(path)!r} must end with '.h5' (Keras 2 layout), '.weights.h5' or "
            "'.keras'"
        )
    return str(path)
