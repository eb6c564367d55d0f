"""One runtime in its own process, for ``bench/inference_speed.py --runtimes`` (not run alone).

TensorFlow and PyTorch in one process crash here (segmentation fault), and separate processes
also keep each runtime's thread pool to itself. The parent starts one worker per variant:

    python bench/runtime_worker.py KIND TARGET IMAGES.npy WARMUP BATCH_SIZES

KIND: ``keras`` (TARGET a ``.keras`` file, called with ``predict_on_batch``), ``keras_tf_function``
(the same model under a plain ``tf.function``), ``export`` (TARGET an exported file, run by
`model_optimization.load_runner`) or ``torchvision`` (TARGET a ``torchvision.models.detection``
builder; its backbone + head, random weights). The worker warms up WARMUP calls on each of the
comma-separated BATCH_SIZES, prints ``ready``, then answers each line ``B`` on stdin with the
seconds one call on the first B images took, until ``quit``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _torchvision(name: str):
    import torch
    import torchvision

    torch.manual_seed(0)
    torch.set_num_threads(2)  # the Keras side runs on this machine's 2 cores
    model = getattr(torchvision.models.detection, name)(weights=None, weights_backbone=None)
    model.eval()

    def run(batch):
        x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))) / 255.0
        with torch.inference_mode():
            features = model.backbone(x)
            features = list(features.values()) if isinstance(features, dict) else [features]
            return model.head(features)

    return run


def _keras(path: str, tf_function: bool):
    import keras

    import models  # noqa: F401  (registers the custom layers)

    model = keras.models.load_model(path, compile=False)
    if not tf_function:
        return model.predict_on_batch
    import tensorflow as tf

    function = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda batch: function(tf.constant(batch)).numpy()


def main(argv) -> None:
    kind, target, images_file, warmup, batch_sizes = argv
    images = np.load(images_file)
    if kind == "torchvision":
        run = _torchvision(target)
    elif kind in ("keras", "keras_tf_function"):
        run = _keras(target, kind == "keras_tf_function")
    elif kind == "export":
        from model_optimization import load_runner

        run = load_runner(target)
    else:
        raise SystemExit(f"unknown worker kind {kind!r}")
    for size in (int(b) for b in batch_sizes.split(",")):
        for _ in range(int(warmup)):
            run(images[:size])
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        batch = images[: int(line)]
        start = time.perf_counter()
        run(batch)
        print(time.perf_counter() - start, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
