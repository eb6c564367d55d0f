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

Runtimes side by side (``--runtimes``): the training-mode model of each ``--models`` entry
exported to LiteRT (float32 / dynamic-range / int8), ONNX Runtime and OpenVINO (float32 / bf16
/ NNCF int8), plus the Keras model itself (``keras``: BatchNormalization folded and
``predict_on_batch``, what ``predict`` runs; ``keras_unfolded``: the model as trained;
``keras_tf_function``: a plain `tf.function`, to see the Keras per-call overhead;
``keras_bf16``: ``predict --precision bf16``; see `bench/runtime_worker.py`) and torchvision's
peer (``torchvision``, and ``torchvision_bf16`` under ``torch.autocast`` bfloat16, the fair
match for ``keras_bf16``; ``ssd300_vgg16`` backbone + head, random weights, for SSD300 and SSD7;
``ssdlite320_mobilenet_v3_large`` for ``ssdlite`` (MobileNetV2) and ``ssdlite_v3``, 2 threads,
eval mode), on real VOC images (``../shared/data/voc2012_sample``). Every variant is warmed
up, then all are called in turn, ``--runs`` rounds (interleaved, so load changes hit all
alike, the order rotated each round and ``--gap-ms`` of quiet before each call; each variant in
its own process, `bench/runtime_worker.py`, as TensorFlow and PyTorch crash in one); the
median, min and
interquartile spread of each and the ratios to torchvision (median and best-of-n) are printed,
with the load average before and after. ``--table FILE`` writes them as a Markdown table.
torch/torchvision are not project dependencies: run it from a virtualenv that has them::

    .venv-bench/bin/python bench/inference_speed.py --runtimes all --models ssd300,ssd7 \
        --batch-sizes 1 --runs 30 --table bench/results/runtimes.md > runtimes.json
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

MODELS = model_presets()


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
    parser.add_argument(
        "--runtimes",
        help=f"compare runtimes instead: 'all' or a comma list of {', '.join(RUNTIME_VARIANTS)}",
    )
    parser.add_argument("--table", metavar="FILE", help="--runtimes: also write a Markdown table")
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=50.0,
        help="--runtimes: idle milliseconds before each timed call, so that no runtime's "
        "spinning threads are still busy (default 50)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 1:
        parser.error("--runs and --warmup must be >= 1")
    if args.runtimes:
        return compare_runtimes(args)

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


# --------------------------------------------------------------------------------------------
# Runtimes side by side
# --------------------------------------------------------------------------------------------

# Exported variants: name -> (export format, quantization); keras* and torchvision are not
# exports.
EXPORTS = {
    "litert": ("tflite", None),
    "litert_dynamic": ("tflite", "dynamic"),
    "litert_int8": ("tflite", "int8"),
    "onnxruntime": ("onnx", None),
    "openvino": ("openvino", None),
    "openvino_bf16": ("openvino", "bf16"),
    "openvino_int8": ("openvino", "int8"),
}
KERAS_VARIANTS = ("keras", "keras_unfolded", "keras_tf_function", "keras_bf16")
RUNTIME_VARIANTS = (*KERAS_VARIANTS, *EXPORTS, "torchvision", "torchvision_bf16")
# torchvision's counterpart of each model (backbone + head, no decoding): SSD7 has none of its
# own, so it is timed against SSD300's to put the small model on the same scale.
# SSDLite (MobileNetV2 or V3-Large, 320x320) is timed against ssdlite320_mobilenet_v3_large.
TORCHVISION_PEERS = {
    "ssd300": "ssd300_vgg16",
    "ssd7": "ssd300_vgg16",
    "ssdlite": "ssdlite320_mobilenet_v3_large",
    "ssdlite_v3": "ssdlite320_mobilenet_v3_large",
}
VOC_SAMPLE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "voc2012_sample"
WORKER = Path(__file__).resolve().parent / "runtime_worker.py"


def _voc_images(height: int, width: int, n: int = 16) -> np.ndarray:
    """``n`` real VOC images resized to the model input, float32 pixels in [0, 255]."""
    import cv2

    files = sorted((VOC_SAMPLE / "JPEGImages").glob("*.jpg"))[:n]
    if not files:
        raise SystemExit(f"no VOC images in {VOC_SAMPLE / 'JPEGImages'}")
    images = [cv2.resize(cv2.imread(str(f))[..., ::-1], (width, height)) for f in files]
    return np.stack(images).astype("float32")


def _start_worker(kind: str, target, images: np.ndarray, folder: Path, key: str, args):
    """A `bench/runtime_worker.py` process running one variant, warmed up (None if it failed)."""
    import subprocess

    np.save(folder / f"{key}.npy", images)
    log = open(folder / f"{key}.log", "w")
    command = [sys.executable, str(WORKER), kind, str(target), str(folder / f"{key}.npy")]
    command += [str(args.warmup), args.batch_sizes]
    # A runner of an exported file needs no TensorFlow: Keras on its numpy backend (which needs
    # jax) saves each such worker about 400 MB (SSD300 with every variant ran out of memory).
    import importlib.util

    env = None
    if kind == "export" and importlib.util.find_spec("jax") is not None:
        env = dict(os.environ, KERAS_BACKEND="numpy")
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env
    )
    if process.stdout.readline().strip() != "ready":
        process.wait()
        tail = (folder / f"{key}.log").read_text().strip().splitlines()[-1:]
        print(f"{key}: worker failed ({tail})", file=sys.stderr, flush=True)
        return None
    return process


def _call(process, batch_size: int) -> float:
    process.stdin.write(f"{batch_size}\n")
    process.stdin.flush()
    return float(process.stdout.readline())


def _start_workers(name: str, variants, folder: Path, args) -> dict:
    """One warmed-up worker process per variant of model ``name`` (all exports are written
    first, so the converters' memory is free before the workers load)."""
    import contextlib
    import gc

    from model_optimization import export

    builder, preset = MODELS[name]
    height, width, _ = preset["image_size"]
    images = _voc_images(height, width)
    model = builder(**{**preset, "mode": "training"})
    model.save(folder / f"{name}.keras")
    planned = []  # (worker name, kind, target, images)
    for variant in variants:
        key = f"{name}_{variant}"
        if variant in KERAS_VARIANTS:
            planned.append((variant, variant, folder / f"{name}.keras", images))
        elif variant in ("torchvision", "torchvision_bf16"):
            peer = TORCHVISION_PEERS.get(name)
            if peer is not None:
                size = 320 if "320" in peer else 300
                worker = f"torchvision_{peer}" + variant.removeprefix("torchvision")
                planned.append((worker, variant, peer, _voc_images(size, size)))
        else:
            fmt, quantization = EXPORTS[variant]
            suffix = {"tflite": ".tflite", "onnx": ".onnx", "openvino": ".xml"}[fmt]
            path = folder / f"{key}{suffix}"
            try:
                with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars: not JSON
                    export(
                        model,
                        path,
                        format=fmt,
                        quantization=quantization,
                        representative_data=images,
                        num_calibration_samples=len(images),
                    )
            except ImportError as error:  # that runtime is not installed here
                print(f"{key}: skipped ({error})", file=sys.stderr, flush=True)
                continue
            gc.collect()
            planned.append((variant, "export", path, images))
    del model
    keras.backend.clear_session()
    gc.collect()
    workers = {}
    for worker, kind, target, inputs in planned:
        workers[worker] = _start_worker(kind, target, inputs, folder, f"{name}_{worker}", args)
    return {k: w for k, w in workers.items() if w is not None}


def _interleaved(workers: dict, batch_size: int, runs: int, gap: float) -> dict:
    """Seconds of ``runs`` calls of each worker: every variant once per round, the order
    rotated each round, and ``gap`` seconds of quiet before each call. A runtime's thread pool
    spins for a while after a call (PyTorch's OpenMP threads, the TensorFlow and XNNPACK
    pools), taking the 2 cores from whichever variant runs next: back to back, the Keras
    SSDLite times spread over an IQR of 4.2 ms, with 50 ms gaps 0.6 ms (one run each)."""
    keys = list(workers)
    times = {key: [] for key in keys}
    for round_index in range(runs):
        shift = round_index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            time.sleep(gap)
            times[key].append(_call(workers[key], batch_size))
    return times


def compare_runtimes(args) -> int:
    import tempfile

    variants = RUNTIME_VARIANTS if args.runtimes == "all" else args.runtimes.split(",")
    unknown = sorted(set(variants) - set(RUNTIME_VARIANTS))
    if unknown:
        raise SystemExit(f"--runtimes: unknown {unknown}; choose from {RUNTIME_VARIANTS}")
    keras.utils.set_random_seed(0)
    load_before = [round(v, 2) for v in os.getloadavg()]
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            workers = _start_workers(name, variants, Path(folder), args)
            for batch_size in (int(b) for b in args.batch_sizes.split(",")):
                times = _interleaved(workers, batch_size, args.runs, args.gap_ms / 1000)
                peer = next(
                    (k for k in times if k.startswith("torchvision") and "bf16" not in k), None
                )
                for key, values in times.items():
                    q1, _, q3 = statistics.quantiles(values, n=4)
                    row = {
                        "model": name,
                        "runtime": key,
                        "batch_size": batch_size,
                        "median_ms": round(1000 * statistics.median(values), 3),
                        "min_ms": round(1000 * min(values), 3),
                        "iqr_ms": round(1000 * (q3 - q1), 3),
                        "runs": args.runs,
                    }
                    if peer is not None:
                        row["vs_torchvision_median"] = round(
                            statistics.median(times[peer]) / statistics.median(values), 3
                        )
                        row["vs_torchvision_best"] = round(min(times[peer]) / min(values), 3)
                    results.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
            for process in workers.values():
                process.stdin.write("quit\n")
                process.stdin.flush()
                process.wait()
            keras.backend.clear_session()
    report = {
        "benchmark": "inference_speed_runtimes",
        "keras": keras.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "images": str(VOC_SAMPLE / "JPEGImages"),
        "warmup": args.warmup,
        "gap_ms": args.gap_ms,
        "load_average_before": load_before,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "results": results,
    }
    print(json.dumps(report, indent=2))
    if args.table:
        Path(args.table).write_text(_markdown_table(report))
    return 0


def _markdown_table(report: dict) -> str:
    lines = [
        "| model | runtime | batch | median ms | best ms | IQR ms | vs torchvision (median) "
        "| vs torchvision (best) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['model']} | {r['runtime']} | {r['batch_size']} | {r['median_ms']:.1f} "
            f"| {r['min_ms']:.1f} | {r['iqr_ms']:.1f} | {r.get('vs_torchvision_median', '')}x "
            f"| {r.get('vs_torchvision_best', '')}x |"
        )
    load = f"{report['load_average_before']} -> {report['load_average_after']}"
    lines.append(f"\n{report['cpu_count']} CPUs, load average (1/5/15 min) {load}.\n")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
