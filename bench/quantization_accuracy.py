"""Accuracy and latency of every export of a trained SSD against its Keras model (not a test).

On real data: BCCD (``../shared/data/bccd/BCCD``, 3 classes). The model is a run given with
``--run`` (trained on BCCD, e.g. by ``bench/train_bccd.py``) or an SSD7 trained here for
``--train-minutes`` (variances 0.1/0.1/0.2/0.2). Besides the Keras model as trained (the
reference), the forms ``predict`` runs (``keras/folded``: BatchNormalization folded, the
default; ``keras/bf16``: ``--precision bf16``) and each export of `ssd_keras.runtime.CANDIDATES`
whose packages are installed (LiteRT float32 / float16 / dynamic / int8, ONNX Runtime, OpenVINO
float32 / bf16 / int8; int8 calibrated on ``--num-calibration`` training images) is evaluated
like the Keras model:

- Pascal VOC mAP (11-point and all-point, IoU 0.5) on the ``test`` split, and its difference
  from the Keras model's (points of mAP, i.e. x100);
- agreement with the Keras detections (`ssd_keras.runtime.detections_agree`: same class,
  IoU >= 0.7 for detections of confidence >= 0.5): unmatched detections over the test images;
- latency at batch 1 and 8: median (and min/max) of ``--rounds`` calls, all runtimes called in
  turn (interleaved) in this one process, with the load average noted.

Prints one JSON object (also ``<out>/quantization_accuracy.json``).

Usage::

    python bench/quantization_accuracy.py --train-minutes 10          # SSD7 trained here
    python bench/quantization_accuracy.py --run runs/bench_bccd       # a run trained on BCCD
    python bench/quantization_accuracy.py --small                     # seconds; what CI runs
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine_info, write_report  # noqa: E402

BCCD = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "bccd" / "BCCD"
CLASSES = ["background", "RBC", "WBC", "Platelets"]


def _subset(dataset, n: int):
    """The first ``n`` images of a `DataGenerator` (with their labels), as a new one."""
    from data_generator.object_detection_2d_data_generator import DataGenerator

    if n >= dataset.get_dataset_size():
        return dataset
    neutral = dataset.eval_neutral[:n] if dataset.eval_neutral is not None else None
    return DataGenerator(
        filenames=list(dataset.filenames[:n]),
        labels=list(dataset.labels[:n]),
        image_ids=list(dataset.image_ids[:n]) if dataset.image_ids is not None else None,
        eval_neutral=neutral,
        verbose=False,
    )


def _train(args, out: Path) -> Path:
    """An SSD7 trained on BCCD's train split by bench/train_bccd.py (no evaluation there)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "train_bccd", Path(__file__).resolve().parent / "train_bccd.py"
    )
    train_bccd = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_bccd)
    run = out / "run"
    argv = ["--data", args.data, "--model", "ssd7", "--minutes", str(args.train_minutes)]
    argv += ["--eval-every", "-1", "--out", str(run), "--seed", str(args.seed)]
    # SSD300's variances: SSD7 reaches about 0.8 mAP on BCCD in 6-9 minutes with them (README).
    argv += ["--variances", "0.1", "0.1", "0.2", "0.2"]
    if args.small:
        argv += ["--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "4"]
        argv += ["--image-size", "120", "160"]
    train_bccd.main(argv)
    return run


def _latency(runners: dict, images, rounds: int) -> dict:
    """Batch 1 and 8 latencies (ms) of each runner, called in turn."""
    import numpy as np

    from ssd_keras.runtime import interleaved_times

    result = {name: {} for name in runners}
    for batch_size in (1, 8):
        batch = np.asarray(images[:batch_size], dtype=np.float32)
        times = interleaved_times(runners, batch, rounds)
        for name, values in times.items():
            result[name][f"batch{batch_size}"] = {
                "median_ms": round(1000 * statistics.median(values), 3),
                "min_ms": round(1000 * min(values), 3),
                "max_ms": round(1000 * max(values), 3),
            }
    return result


def _parse_args(argv):
    """The parser (for its error exits) and the arguments, with ``--small``'s settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(BCCD), help="the BCCD folder (VOC layout)")
    parser.add_argument("--run", help="a run trained on BCCD (default: train an SSD7 here)")
    parser.add_argument("--train-minutes", type=float, default=10.0)
    parser.add_argument("--num-calibration", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20, help="timed calls per runtime")
    parser.add_argument("--n-test", type=int, help="test images used (default: all 72)")
    parser.add_argument(
        "--only", help="comma-separated runtime/precision pairs, e.g. openvino/int8,litert/int8"
    )
    parser.add_argument(
        "--small",
        action="store_true",
        help="CI smoke mode: a 3-step SSD7 at 120x160, 8 test images, 8 calibration images, "
        "3 rounds, one export per runtime (default --only litert/int8,onnxruntime/fp32,"
        "openvino/int8); the numbers mean nothing, the pipeline runs",
    )
    parser.add_argument("--out", default="runs/bench_quantization")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.small:
        args.train_minutes, args.num_calibration, args.rounds = 0.5, 8, 3
        args.n_test = args.n_test or 8
        args.only = args.only or "litert/int8,onnxruntime/fp32,openvino/int8"
    if not (Path(args.data) / "ImageSets" / "Main" / "test.txt").is_file():
        parser.exit(2, f"BCCD not found at {args.data} (expected ImageSets/Main/test.txt)\n")
    return parser, args


def _export_all(args, run: Path, model, train_data, out: Path):
    """Exports of the run for every available runtime/precision (``--only``): the loaded
    runners by key (``keras`` first) and their report rows (an export error is a row's
    ``error``; the other runtimes still run)."""
    from model_optimization.folding import fold_batch_norm
    from ssd_keras.optimize import export_run
    from ssd_keras.precision import mixed_model
    from ssd_keras.predict import load_model
    from ssd_keras.runtime import CANDIDATES, available

    wanted = set(args.only.split(",")) if args.only else None
    folded = fold_batch_norm(model)
    # The model as trained (the reference), and the forms predict runs by default (folded)
    # and with --precision bf16.
    models = {
        "keras": model,
        "keras/folded": folded,
        "keras/bf16": mixed_model(folded, "mixed_bfloat16"),
    }
    rows = {
        "keras": {"runtime": "keras", "precision": "fp32"},
        "keras/folded": {"runtime": "keras", "precision": "folded"},
        "keras/bf16": {"runtime": "keras", "precision": "bf16"},
    }
    for runtime, precision, fmt, quantization, name, modules in CANDIDATES:
        key = f"{runtime}/{precision}"
        if (wanted is not None and key not in wanted) or not available(modules):
            continue
        path = out / "exports" / name
        export_start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars: not JSON
                export_run(
                    run,
                    path,
                    format=fmt,
                    quantization=quantization,
                    calibration_data=train_data if quantization == "int8" else None,
                    num_calibration_samples=args.num_calibration,
                    overwrite=True,
                )
            models[key] = load_model(path)[0]
        except Exception as error:  # reported, the other runtimes still run
            rows[key] = {"runtime": runtime, "precision": precision, "error": repr(error)}
            continue
        rows[key] = {
            "runtime": runtime,
            "precision": precision,
            "path": str(path),
            "size_bytes": path.stat().st_size
            + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0),
            "export_seconds": round(time.perf_counter() - export_start, 1),
        }
    return models, rows


def _add_accuracy(models: dict, rows: dict, config, test_data, uint8_images) -> None:
    """mAP of each runner, its difference to Keras' in points, and its detections that find
    no partner among Keras' (into `rows`)."""
    from ssd_keras.evaluate import evaluate
    from ssd_keras.predict import Predictor
    from ssd_keras.runtime import detections_agree

    reference = Predictor(models["keras"], config, confidence_thresh=0.45)(uint8_images)
    for key, runner in models.items():
        result = evaluate(runner, config, test_data, plots=False, verbose=False)
        rows[key]["mAP_11point"] = result["mAP_11point"]
        rows[key]["mAP_all_point"] = result["mAP_all_point"]
        got = Predictor(runner, config, confidence_thresh=0.45)(uint8_images)
        rows[key]["unmatched_detections"] = sum(
            detections_agree(r, g) for r, g in zip(reference, got)
        )
    keras_row = rows["keras"]
    keras_row["confident_detections"] = int(sum((r[:, 1] >= 0.5).sum() for r in reference))
    for row in rows.values():
        if "mAP_11point" in row:
            for flavour in ("11point", "all_point"):
                delta = 100 * (row[f"mAP_{flavour}"] - keras_row[f"mAP_{flavour}"])
                row[f"delta_points_{flavour}"] = round(delta, 3)


def _add_latency(models: dict, rows: dict, images, rounds: int) -> None:
    """Batch 1 and 8 latencies of each runner and its batch-1 speedup over Keras (into `rows`)."""
    runners = {k: getattr(m, "predict_on_batch", m) for k, m in models.items()}
    for key, latency in _latency(runners, images, rounds).items():
        rows[key]["latency"] = latency
    keras_ms = rows["keras"]["latency"]["batch1"]["median_ms"]
    for row in rows.values():
        if "latency" in row:
            row["speedup_vs_keras_batch1"] = round(
                keras_ms / row["latency"]["batch1"]["median_ms"], 3
            )


def main(argv=None) -> dict:
    parser, args = _parse_args(argv)
    import numpy as np

    from ssd_keras.data import load_voc
    from ssd_keras.optimize import calibration_images
    from ssd_keras.predict import load_run

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    start = time.perf_counter()
    run = Path(args.run) if args.run else _train(args, out)
    model, config = load_run(run)
    if config.classes != CLASSES:
        parser.exit(2, f"--run {run}: classes {config.classes}, BCCD has {CLASSES}\n")
    train_data = load_voc(args.data, "train", CLASSES)
    test_data = load_voc(args.data, "test", CLASSES)
    if args.n_test:
        test_data = _subset(test_data, args.n_test)
    n_test = test_data.get_dataset_size()
    # The test images at the model's input size, for agreement and latency.
    images = np.concatenate(list(calibration_images(test_data, config, batch_size=8, seed=0)))
    uint8_images = [np.asarray(im, dtype=np.uint8) for im in images]

    models, rows = _export_all(args, run, model, train_data, out)
    _add_accuracy(models, rows, config, test_data, uint8_images)
    _add_latency(models, rows, images, args.rounds)

    report = {
        "benchmark": "quantization_accuracy",
        "run": str(run),
        "model": config.model,
        "image_size": list(config.image_size),
        "small": args.small,
        "test_images": n_test,
        "calibration_images": args.num_calibration,
        "rounds": args.rounds,
        "criterion": "same class, IoU >= 0.7, confidence >= 0.5 (partner >= 0.45)",
        "results": list(rows.values()),
        "wall_minutes": round((time.perf_counter() - start) / 60, 2),
        "machine": machine_info(load_start),
    }
    return write_report(report, out / "quantization_accuracy.json")


if __name__ == "__main__":
    main()
