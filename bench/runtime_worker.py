"""One runtime in its own process, for ``bench/inference_speed.py --runtimes`` (not run alone).

TensorFlow and PyTorch in one process crash here (segmentation fault), and separate processes
also keep each runtime's thread pool to itself. The parent starts one worker per variant:

    python bench/runtime_worker.py KIND TARGET IMAGES.npy WARMUP BATCH_SIZES

KIND: ``keras`` (TARGET a ``.keras`` file, its BatchNormalizations folded as
`ssd_keras.predict.load_model` folds them, called with ``predict_on_batch``: what ``predict``
runs), ``keras_unfolded`` (the model as saved, ``predict_on_batch``), ``keras_tf_function``
(the folded model under a plain ``tf.function``), ``keras_bf16`` (the folded model in
``mixed_bfloat16``, `ssd_keras.precision.mixed_model`, what ``predict --precision bf16`` runs),
``export`` (TARGET an exported file, run by `model_optimization.load_runner`), ``torchvision``
(TARGET a ``torchvision.models.detection`` builder; its backbone + head, random weights) or
``torchvision_bf16`` (the same under ``torch.autocast("cpu", torch.bfloat16)``). The worker
warms up WARMUP calls on each of the comma-separated BATCH_SIZES, prints ``ready``, then
answers each line ``B`` on stdin with the seconds one call on the first B images took, until
``quit``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _torchvision(name: str, bf16: bool):
    import contextlib

    import torch
    import torchvision

    torch.manual_seed(0)
    torch.set_num_threads(2)  # the Keras side runs on this machine's 2 cores
    model = getattr(torchvision.models.detection, name)(weights=None, weights_backbone=None)
    model.eval()

    def precision():
        if bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def run(batch):
        x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))) / 255.0
        with torch.inference_mode(), precision():
            features = model.backbone(x)
            features = list(features.values()) if isinstance(features, dict) else [features]
            return model.head(features)

    return run


def _keras(path: str, kind: str):
    import keras

    import models  # noqa: F401  (registers the custom layers)

    model = keras.models.load_model(path, compile=False)
    if kind != "keras_unfolded":
        from model_optimization.folding import fold_batch_norm

        model = fold_batch_norm(model)
    if kind == "keras_bf16":
        from ssd_keras.precision import mixed_model

        model = mixed_model(model, "mixed_bfloat16")
    if kind != "keras_tf_function":
        return model.predict_on_batch
    import tensorflow as tf

    function = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda batch: function(tf.constant(batch)).numpy()


def main(argv) -> None:
    kind, target, images_file, warmup, batch_sizes = argv
    images = np.load(images_file)
    if kind in ("torchvision", "torchvision_bf16"):
        run = _torchvision(target, kind == "torchvision_bf16")
    elif kind in ("keras", "keras_unfolded", "keras_tf_function", "keras_bf16"):
        run = _keras(target, kind)
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
