"""The model table (not a test): parameters, GFLOPs and batch-1 CPU latency of SSD7, SSDLite,
SSD300 and SSD512, side by side in one run. Prints JSON (and ``--table FILE``: Markdown).

- Parameters: ``model.count_params()`` of the preset (SSD300/SSD512/SSDLite: 20 VOC classes;
  SSD7: its Udacity preset, 5 classes, 300x480).
- GFLOPs: 2 x the multiply-accumulates of the convolutions (regular, depthwise, dilated) and
  dense layers for one image, from the layer shapes (exact for these models; additions of
  biases, BatchNorm, activations and the softmax are left out, as usual).
- CPU ms: the training-mode graph (network + anchors, no decoding) in the inference form
  ``predict`` runs (BatchNormalization folded, `model_optimization.fold_batch_norm`) called with
  ``predict_on_batch`` on one random image, median (and best) of ``--runs`` rounds in which every
  model is called once in turn (interleaved, so load changes hit all alike), after warm-up.

Example::

    .venv/bin/python bench/model_table.py --runs 20 --table bench/results/model_table.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.common import model_presets  # noqa: E402
from model_optimization.folding import fold_batch_norm  # noqa: E402

MODELS = model_presets()


def multiply_accumulates(model: keras.Model) -> int:
    """Multiply-accumulates of one image through the convolution and dense layers."""
    total = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            total += int(h) * int(w) * int(c_out) * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw, c_in, _ = layer.kernel.shape
            total += int(h) * int(w) * int(c_out) * int(kh) * int(kw) * int(c_in)
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--table", metavar="FILE", help="also write a Markdown table")
    args = parser.parse_args(argv)
    names = args.models.split(",")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {list(MODELS)}")

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    models, inputs, rows = {}, {}, {}
    for name in names:
        builder, preset = MODELS[name]
        model = builder(**{**preset, "mode": "training"})
        models[name] = model
        inputs[name] = rng.uniform(0, 255, (1, *preset["image_size"])).astype("float32")
        macs = multiply_accumulates(model)
        rows[name] = {
            "model": name,
            "image_size": list(preset["image_size"]),
            "n_classes": preset["n_classes"],
            "params": int(model.count_params()),
            "anchors": int(model.output.shape[1]),
            "gmacs": round(macs / 1e9, 3),
            "gflops": round(2 * macs / 1e9, 3),
        }
        models[name] = fold_batch_norm(model)
        for _ in range(args.warmup):
            models[name].predict_on_batch(inputs[name])
    load_before = [round(v, 2) for v in os.getloadavg()]
    times = {name: [] for name in names}
    for _ in range(args.runs):
        for name in names:
            start = time.perf_counter()
            np.asarray(models[name].predict_on_batch(inputs[name]))
            times[name].append(time.perf_counter() - start)
    for name in names:
        rows[name]["cpu_ms_median"] = round(1000 * statistics.median(times[name]), 1)
        rows[name]["cpu_ms_best"] = round(1000 * min(times[name]), 1)
    report = {
        "benchmark": "model_table",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "runs": args.runs,
        "load_average_before": load_before,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "results": [rows[name] for name in names],
    }
    print(json.dumps(report, indent=2))
    if args.table:
        lines = [
            "| model | input | params | GFLOPs | CPU ms, batch 1 (median / best) |",
            "|---|---|---|---|---|",
        ]
        for r in report["results"]:
            size = "x".join(str(v) for v in r["image_size"][:2])
            lines.append(
                f"| {r['model']} | {size} | {r['params']:,} | {r['gflops']:.2f} "
                f"| {r['cpu_ms_median']:.1f} / {r['cpu_ms_best']:.1f} |"
            )
        load = f"{report['load_average_before']} -> {report['load_average_after']}"
        lines.append(f"\n{report['cpu_count']} CPUs, load average {load}.\n")
        Path(args.table).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
