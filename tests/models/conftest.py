"""What the legacy weight and checkpoint tests share: the small SSD7 their files are written for,
and Keras 2 HDF5 files written with h5py in exactly Keras 2's layout.

Test modules cannot import this conftest under --import-mode=importlib: the pieces come as the
``keras2`` fixture.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import h5py
import keras
import numpy as np
import pytest

# The small SSD7 (64 x 96 input, 2 classes) of the legacy files.
SMALL_SSD7 = dict(
    image_size=(64, 96, 3),
    n_classes=2,
    scales=[0.08, 0.16, 0.32, 0.64, 0.96],
    aspect_ratios_global=[0.5, 1.0, 2.0],
    normalize_coords=True,
)
# Keras 2 weight names: "<layer>/<weight>:0" (BatchNormalization in this order).
KERAS2_NAMES = {
    "Conv2D": ["kernel", "bias"],
    "BatchNormalization": ["gamma", "beta", "moving_mean", "moving_variance"],
}


def small_ssd7(seed: int = 0) -> keras.Model:
    """`SMALL_SSD7` built after ``keras.utils.set_random_seed(seed)``."""
    from models.keras_ssd7 import build_model

    keras.utils.set_random_seed(seed)
    return build_model(**SMALL_SSD7)


def random_weights(layer, rng) -> list:
    """``[(Keras 2 weight name, random array), ...]`` for ``layer`` (empty for layers that
    `KERAS2_NAMES` does not list)."""
    names = KERAS2_NAMES.get(type(layer).__name__, [])
    return [
        (f"{layer.name}/{n}:0", rng.normal(size=v.shape).astype("float32"))
        for n, v in zip(names, layer.weights)
    ]


def random_layers(model, rng) -> list:
    """Random weights for every layer of ``model`` with Keras 2 names; layers without weights are
    listed too, as in Keras 2."""
    return [(layer.name, random_weights(layer, rng)) for layer in model.layers]


def write_layer_groups(group, layers) -> None:
    """Writes ``layers`` = ``[(layer name, [(weight name, array), ...]), ...]`` under ``group``:
    the ``layer_names`` attribute, then one group per layer with its ``weight_names`` attribute
    (byte strings, as Keras 2 wrote them) and one dataset per weight."""
    group.attrs["layer_names"] = np.array([name.encode() for name, _ in layers])
    for name, weights in layers:
        layer_group = group.create_group(name)
        layer_group.attrs["weight_names"] = np.array([w.encode() for w, _ in weights], dtype="S")
        for weight_name, array in weights:
            layer_group.create_dataset(weight_name, data=array)


def write_keras2_h5(path, layers, full_model: bool = True) -> None:
    """A Keras 2.1 file of ``layers``: ``model_weights/<layer>/<weight name>`` for a full-model
    file (``model.save``), or the same at the root for a weights-only file
    (``model.save_weights``)."""
    with h5py.File(path, "w") as f:
        if full_model:
            f.attrs["model_config"] = b"{}"
            group = f.create_group("model_weights")
        else:
            group = f
        group.attrs["keras_version"] = b"2.1.5"
        group.attrs["backend"] = b"tensorflow"
        write_layer_groups(group, layers)


def write_keras2_full_model(
    path, layers, training_config=None, optimizer_weights=None, model_config=None
) -> None:
    """A Keras 2 ``model.save`` file: ``model_weights/<group>/<weight name>``, ``training_config``
    as JSON, and ``optimizer_weights/<name>`` with its ``weight_names``, as Keras 2 wrote them."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.4.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(model_config or {"class_name": "Functional"}).encode()
        if training_config is not None:
            f.attrs["training_config"] = json.dumps(training_config).encode()
        write_layer_groups(f.create_group("model_weights"), layers)
        if optimizer_weights is not None:
            opt = f.create_group("optimizer_weights")
            opt.attrs["weight_names"] = np.array(
                [n.encode() for n, _ in optimizer_weights], dtype="S"
            )
            for name, array in optimizer_weights:
                opt.create_dataset(name, data=array)


@pytest.fixture(scope="session")
def keras2():
    """The shared pieces: ``keras2.names``, ``keras2.ssd7(seed)``, ``keras2.random_weights(layer,
    rng)``, ``keras2.random_layers(model, rng)``, ``keras2.write_h5(path, layers, full_model)`` and
    ``keras2.write_full_model(path, layers, training_config, optimizer_weights, model_config)``."""
    return SimpleNamespace(
        names=KERAS2_NAMES,
        ssd7=small_ssd7,
        random_weights=random_weights,
        random_layers=random_layers,
        write_h5=write_keras2_h5,
        write_full_model=write_keras2_full_model,
    )
