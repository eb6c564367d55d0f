"""Multi-device training on 2 CPU devices, TensorFlow MirroredStrategy and JAX DataParallel:
training runs, and one step equals the one-device step on the same data.

TensorFlow's and JAX's devices can only be set before they initialise, so each check runs in a
fresh Python process (with its own KERAS_BACKEND, whatever the suite's backend). Why the
MirroredStrategy steps must agree: the batch holds the same image twice, so each replica
gets one copy; its positives, hard negatives (mined per replica) and BatchNormalization
statistics then equal those of the whole batch, and the averaged replica gradients equal the
one-device gradient. SGD without momentum makes the weight change proportional to it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
import numpy as np
from ssd_keras.distribute import mirrored_strategy

strategy = mirrored_strategy(cpu_devices=2)  # first: splits the CPU before TF initialises

from data_generator.object_detection_2d_data_generator import DataGenerator
from ssd_keras.config import RunConfig
from ssd_keras.train import train

info = json.loads(sys.argv[1])
image = info["image"]
labels = np.array(info["labels"], dtype=np.float64)
data = DataGenerator(filenames=[image, image], labels=[labels, labels], verbose=False)
config = RunConfig.create("ssd7", info["classes"], image_size=(64, 96))
common = dict(epochs=1, batch_size=2, optimizer="sgd", learning_rate=0.01,
              lr_schedule="constant", augmentation="none", seed=7, verbose=0, overwrite=True)

single = train(config, data, info["out"] + "/single", **common)
mirrored = train(config, data, info["out"] + "/mirrored", strategy=strategy, **common)
import keras
keras.utils.set_random_seed(7)  # train() seeds the same way before building
initial = config.build_model().get_weights()
w0 = single.model.get_weights()
w1 = mirrored.model.get_weights()
diff = max(float(np.max(np.abs(a - b))) for a, b in zip(w0, w1))
print(json.dumps({
    "replicas": int(strategy.num_replicas_in_sync),
    "devices": list(strategy.extra_devices) if hasattr(strategy, "extra_devices") else
               [str(d) for d in strategy.extended.worker_devices],
    "loss_single": single.history["loss"], "loss_mirrored": mirrored.history["loss"],
    "max_weight_diff": diff,
    "max_step_change": max(float(np.max(np.abs(a - b))) for a, b in zip(w0, initial)),
}))
"""


def _images_with_two_boxes(tiny_shapes, n: int) -> tuple[list[str], list[list]]:
    """The first ``n`` training images of the tiny dataset with at least two boxes: their paths
    and their labels as lists (JSON for the subprocesses)."""
    from ssd_keras.data import load_voc

    dataset = load_voc(tiny_shapes["root"], "train", tiny_shapes["classes"])
    indices = [i for i, y in enumerate(dataset.labels) if len(y) >= 2][:n]
    assert len(indices) == n
    return [dataset.filenames[i] for i in indices], [dataset.labels[i].tolist() for i in indices]


def test_mirrored_strategy_on_two_cpu_devices(tiny_shapes, tmp_path, fresh_python):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed")
    (image,), (labels,) = _images_with_two_boxes(tiny_shapes, 1)
    info = {
        "image": image,
        "labels": labels,
        "classes": tiny_shapes["classes"],
        "out": str(tmp_path),
    }
    env = {"PYTHONPATH": str(PROJECT_ROOT), "KERAS_BACKEND": "tensorflow"}
    done = fresh_python("-c", SCRIPT, json.dumps(info), env=env, timeout=600)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["loss_mirrored"][0] == pytest.approx(result["loss_single"][0], rel=1e-4)
    # The step moved the weights (by much more than the tolerance) and both runs moved alike.
    assert result["max_step_change"] > 1e-3
    assert result["max_weight_diff"] < 1e-5


JAX_SCRIPT = r"""
import json, sys
import numpy as np
from ssd_keras.distribute import data_parallel

distribution = data_parallel(cpu_devices=2)  # first: before JAX initialises its devices

from keras.src.backend.jax import distribution_lib as backend_distribution

# Record how the JAX trainer places each batch it feeds to the step (it calls this function for
# every input and target array while a distribution is active).
placed = []
_place = backend_distribution.distribute_data_input


def recording_place(per_process_batch, layout, batch_dim_name):
    array = _place(per_process_batch, layout, batch_dim_name)
    placed.append({
        "shape": list(array.shape),
        "devices": len(array.sharding.device_set),
        "shards": sorted(list(shard.data.shape) for shard in array.addressable_shards),
    })
    return array


backend_distribution.distribute_data_input = recording_place

from data_generator.object_detection_2d_data_generator import DataGenerator
from ssd_keras.config import RunConfig
from ssd_keras.train import train

info = json.loads(sys.argv[1])
data = DataGenerator(
    filenames=info["images"],
    labels=[np.array(y, dtype=np.float64) for y in info["labels"]],
    verbose=False,
)
config = RunConfig.create("ssd7", info["classes"], image_size=(64, 96))
common = dict(epochs=1, batch_size=2, optimizer="sgd", learning_rate=0.01,
              lr_schedule="constant", augmentation="none", seed=7, verbose=0, overwrite=True)

single = train(config, data, info["out"] + "/single", **common)
placed_single = len(placed)
parallel = train(config, data, info["out"] + "/parallel", strategy=distribution, **common)
import keras
keras.utils.set_random_seed(7)  # train() seeds the same way before building
initial = config.build_model().get_weights()
w0 = single.model.get_weights()
w1 = parallel.model.get_weights()
kernel = parallel.model.trainable_variables[0].value
try:
    data_parallel(cpu_devices=4)  # JAX is initialised with 2 CPU devices by now
    late_error = None
except RuntimeError as error:
    late_error = str(error)
print(json.dumps({
    "mesh": [str(d) for d in distribution.device_mesh.devices.ravel()],
    "placed_single": placed_single,
    "placed": placed,
    "kernel_devices": len(kernel.sharding.device_set),
    "kernel_replicated": bool(kernel.sharding.is_fully_replicated),
    "loss_single": single.history["loss"], "loss_parallel": parallel.history["loss"],
    "max_weight_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(w0, w1)),
    "max_step_change": max(float(np.max(np.abs(a - b))) for a, b in zip(w0, initial)),
    "late_error": late_error,
}))
"""


def test_jax_data_parallel_on_two_cpu_devices(tiny_shapes, tmp_path, fresh_python):
    """JAX DataParallel over 2 CPU devices: the batch is split 1 + 1, one step equals the
    one-device step.

    Unlike MirroredStrategy, JAX compiles one program for the whole global batch and shards it
    (SPMD): the loss, the hard negative mining and the BatchNormalization statistics are still
    those of the whole batch, so the step must equal the one-device step even for a batch of two
    *different* images (only the order of float sums may differ).
    """
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    images, labels = _images_with_two_boxes(tiny_shapes, 2)
    info = {
        "images": images,
        "labels": labels,
        "classes": tiny_shapes["classes"],
        "out": str(tmp_path),
    }
    # XLA_FLAGS removed: data_parallel(cpu_devices=2) must set the device count itself.
    env = {"PYTHONPATH": str(PROJECT_ROOT), "KERAS_BACKEND": "jax", "XLA_FLAGS": None}
    done = fresh_python("-c", JAX_SCRIPT, json.dumps(info), env=env, timeout=600)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["mesh"] == ["cpu:0", "cpu:1"]
    # Without a distribution the trainer never shards; with it, every input and target batch
    # (images (2, 64, 96, 3), encoded labels (2, n_anchors, 18)) lies half on each device.
    assert result["placed_single"] == 0
    assert result["placed"], "the distributed run fed no batch through the distribution"
    shapes = {tuple(p["shape"][1:]) for p in result["placed"]}
    assert (64, 96, 3) in shapes and len(shapes) == 2
    for placed in result["placed"]:
        assert placed["shape"][0] == 2
        assert placed["devices"] == 2
        assert placed["shards"] == [[1, *placed["shape"][1:]]] * 2
    # The weights are replicated on both devices.
    assert result["kernel_devices"] == 2 and result["kernel_replicated"]
    assert result["loss_parallel"][0] == pytest.approx(result["loss_single"][0], rel=1e-5)
    # The step moved the weights (by much more than the tolerance) and both runs moved alike.
    assert result["max_step_change"] > 1e-3
    assert result["max_weight_diff"] < 1e-5
    assert "already initialised its devices with 2 CPU device(s)" in result["late_error"]


def test_data_parallel_needs_the_jax_backend():
    import keras

    from ssd_keras.distribute import data_parallel

    if keras.backend.backend() == "jax":
        pytest.skip("checks the error on the other backends")
    with pytest.raises(RuntimeError, match="needs the JAX backend"):
        data_parallel()
    with pytest.raises(RuntimeError, match="needs the JAX backend"):
        data_parallel(cpu_devices=2)


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_jax_cpu_devices_rejects_bad_counts(bad):
    from ssd_keras.distribute import jax_cpu_devices

    with pytest.raises(ValueError, match="cpu_devices must be a positive integer"):
        jax_cpu_devices(bad)


MULTI_PROCESS_SCRIPT = r"""
import json, sys
import numpy as np
import keras

info = json.loads(sys.argv[1])
process_id = info["process_id"]
if process_id is not None:
    # Every process: initialise first, with the coordinator's address (process 0's).
    keras.distribution.initialize(info["coordinator"], info["num_processes"], process_id)

from data_generator.object_detection_2d_data_generator import DataGenerator
from ssd_keras.config import RunConfig
from ssd_keras.distribute import data_parallel
from ssd_keras.train import train

distribution = data_parallel() if process_id is not None else None
data = DataGenerator(
    filenames=info["images"],
    labels=[np.array(y, dtype=np.float64) for y in info["labels"]],
    verbose=False,
)
config = RunConfig.create("ssd7", info["classes"], image_size=(64, 96))
result = train(config, data, info["out"], epochs=1, batch_size=info["batch_size"],
               optimizer="sgd", learning_rate=0.01, lr_schedule="constant",
               augmentation="none", seed=7, verbose=0, overwrite=True, strategy=distribution)
np.savez(info["out"] + "/weights.npz", *result.model.get_weights())
print(json.dumps({
    "devices": [] if distribution is None else
               [str(d) for d in distribution.device_mesh.devices.ravel()],
    "loss": result.history["loss"],
}))
"""


@pytest.mark.slow
def test_jax_data_parallel_across_two_processes(tiny_shapes, tmp_path):
    """The multi-process set-up of `ssd_keras.distribute`'s docstring, on one machine: two JAX
    processes (one CPU device each) joined by ``keras.distribution.initialize``, each training on
    its own image with batch size 1, take the same step as one process on both images with batch
    size 2 (the global batch is the processes' local batches side by side)."""
    import socket

    import numpy as np

    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    images, labels = _images_with_two_boxes(tiny_shapes, 2)
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "KERAS_BACKEND": "jax"}
    env.pop("XLA_FLAGS", None)

    def start(name, process_id, part, batch_size):
        info = {
            "process_id": process_id,
            "coordinator": f"localhost:{port}",
            "num_processes": 2,
            "images": [images[i] for i in part],
            "labels": [labels[i] for i in part],
            "classes": tiny_shapes["classes"],
            "batch_size": batch_size,
            "out": str(tmp_path / name),
        }
        return subprocess.Popen(
            [sys.executable, "-c", MULTI_PROCESS_SCRIPT, json.dumps(info)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
            env=env,
        )

    workers = [start(f"process{i}", i, [i], 1) for i in range(2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
    reference = start("single", None, [0, 1], 2)
    stdout, stderr = reference.communicate(timeout=600)
    assert reference.returncode == 0, stderr[-3000:]

    single = json.loads(stdout.strip().splitlines()[-1])
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    for result in results:
        assert len(result["devices"]) == 2  # the mesh spans both processes' CPUs
        assert result["loss"][0] == pytest.approx(single["loss"][0], rel=1e-5)
    weights = [
        np.load(tmp_path / name / "weights.npz") for name in ("single", "process0", "process1")
    ]
    for key in weights[0].files:
        for other in weights[1:]:
            np.testing.assert_allclose(other[key], weights[0][key], atol=1e-5)


def test_data_parallel_refuses_a_last_batch_that_cannot_be_split():
    """3 images in batches of 2 leave a last batch of 1, which 2 devices cannot share; 4 images
    (no remainder) and 5 images in batches of 3 (remainder 2) are fine."""
    pytest.importorskip("jax")
    from types import SimpleNamespace

    import numpy as np

    from ssd_keras.train import _check_full_batches

    strategy = SimpleNamespace(device_mesh=SimpleNamespace(devices=np.empty((2,))))

    def data(n):
        return SimpleNamespace(get_dataset_size=lambda: n)

    with pytest.raises(ValueError, match=r"training data has 3 images.*holds 1.*2 devices"):
        _check_full_batches("training", data(3), 2, strategy)
    _check_full_batches("training", data(4), 2, strategy)
    _check_full_batches("validation", data(5), 3, strategy)
