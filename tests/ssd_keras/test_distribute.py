"""MirroredStrategy on 2 logical CPU devices: training runs, and one step equals the one-device
step on the same data.

TensorFlow's devices can only be split before it initialises, so the check runs in a fresh
Python process. Why the steps must agree: the batch holds the same image twice, so each replica
gets one copy; its positives, hard negatives (mined per replica) and BatchNormalization
statistics then equal those of the whole batch, and the averaged replica gradients equal the
one-device gradient. SGD without momentum makes the weight change proportional to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

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


def test_mirrored_strategy_on_two_cpu_devices(tiny_shapes, tmp_path):
    from data_generator.object_detection_2d_data_generator import DataGenerator

    dataset = DataGenerator(verbose=False)
    dataset.parse_xml(
        [tiny_shapes["images_dir"]],
        [tiny_shapes["image_sets"]["train"]],
        [tiny_shapes["annotations_dir"]],
        classes=tiny_shapes["classes"],
        verbose=False,
    )
    index = next(i for i, y in enumerate(dataset.labels) if len(y) >= 2)
    info = {
        "image": dataset.filenames[index],
        "labels": dataset.labels[index].tolist(),
        "classes": tiny_shapes["classes"],
        "out": str(tmp_path),
    }
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(info)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["loss_mirrored"][0] == pytest.approx(result["loss_single"][0], rel=1e-4)
    # The step moved the weights (by much more than the tolerance) and both runs moved alike.
    assert result["max_step_change"] > 1e-3
    assert result["max_weight_diff"] < 1e-5
