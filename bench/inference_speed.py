"""Inference latency of SSD300, SSD512 and SSD7 on this machine (not a test). Prints JSON.

For each model and batch size it times, after warm-up calls, the median of ``--runs`` calls of
``model.predict_on_batch`` on random images for:

- ``forward``: the training-mode model (network + anchors, no decoding);
- ``inference``: forward + `DecodeDetections` (per-class NMS), the original's inference model;
- ``inference_fast``: forward + `DecodeDetectionsFast` (optional, ``--variants``).

Each result also has the median process CPU time of a call (all threads; on an idle machine it
is about ``wall * threads``) and the 1-minute load average: on a shared machine the wall times
grow with the load, the CPU times much less.

The decoders are run with the notebooks' ``confidence_thresh=0.5`` by default. The weights are
random (seeded), so few boxes pass that threshold: the decode numbers are the cost of a typical
scene with few objects, not of a worst case; ``--confidence-thresh 0.01`` shows the worst case
(every anchor a candidate).

Example:
    .venv/bin/python bench/inference_speed.py --runs 10 > bench_inference.json
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

from models.keras_ssd7 import SSD7_UDACITY, build_model  # noqa: E402
from models.keras_ssd300 import SSD300_VOC, ssd_300  # noqa: E402
from models.keras_ssd512 import SSD512_VOC, ssd_512  # noqa: E402

MODELS = {
    "ssd300": (ssd_300, SSD300_VOC),
    "ssd512": (ssd_512, SSD512_VOC),
    "ssd7": (build_model, SSD7_UDACITY),
}


def _time_calls(model, x, warmup: int, runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of each of ``runs`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        model.predict_on_batch(x)
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = model.predict_on_batch(x)
        np.asarray(keras.ops.convert_to_numpy(out))  # make sure the result is materialised
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ssd300,ssd512,ssd7")
    parser.add_argument("--variants", default="forward,inference")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--confidence-thresh", type=float, default=0.5)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 1:
        parser.error("--runs and --warmup must be >= 1")

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    results = []
    for name in args.models.split(","):
        builder, preset = MODELS[name]
        height, width, channels = preset["image_size"]
        for variant in args.variants.split(","):
            mode = "training" if variant == "forward" else variant
            model = builder(**{**preset, "mode": mode, "confidence_thresh": args.confidence_thresh})
            for batch_size in (int(b) for b in args.batch_sizes.split(",")):
                x = rng.uniform(0, 255, (batch_size, height, width, channels)).astype("float32")
                times, cpu_times = _time_calls(model, x, args.warmup, args.runs)
                median = statistics.median(times)
                results.append(
                    {
                        "model": name,
                        "variant": variant,
                        "batch_size": batch_size,
                        "median_s": round(median, 5),
                        "per_image_s": round(median / batch_size, 5),
                        "min_s": round(min(times), 5),
                        "max_s": round(max(times), 5),
                        "median_cpu_s": round(statistics.median(cpu_times), 5),
                        "load_average_1min": round(os.getloadavg()[0], 2),
                        "runs": args.runs,
                    }
                )
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
            del model
            keras.backend.clear_session()

    report = {
        "benchmark": "inference_speed",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "confidence_thresh": args.confidence_thresh,
        "warmup": args.warmup,
        "results": results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
