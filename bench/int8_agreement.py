"""int8 TFLite against Keras for a trained run (not a test): same detections? how much faster?

Exports the run's model to full-int8 TFLite (calibrated on ``--calibration`` training images),
then on the test split's real images:

- detections of confidence >= ``--confidence`` from Keras and from int8 (same decoding): a Keras
  detection counts as found when int8 has one of the same class with IoU >= ``--min-iou``;
- batch-1 latency of the raw graph: Keras ``predict_on_batch`` (BatchNorm folded, as
  ``predict`` runs it) and the LiteRT runner, called in turn (interleaved) ``--runs`` times after
  warm-up; median and best of each, and the ratios.

Prints one JSON object. Example (SSDLite trained by ``bench/train_bccd.py``)::

    .venv/bin/python bench/int8_agreement.py --run runs/bench_bccd --data ../shared/data/bccd/BCCD
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a training run folder")
    parser.add_argument("--data", required=True, help="its VOC dataset folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--calibration", type=int, default=100)
    parser.add_argument("--confidence", type=float, default=0.5)
    parser.add_argument("--min-iou", type=float, default=0.7)
    parser.add_argument("--runs", type=int, default=30)
    return parser.parse_args(argv)


def _agreement(keras_detections, int8_detections, min_iou: float):
    """(Keras detections, those int8 found: same class, IoU >= `min_iou`, int8 detections)."""
    from bounding_box_utils.bounding_box_utils import iou

    found = total = extra = 0
    for k, q in zip(keras_detections, int8_detections):
        total += len(k)
        for row in k:
            same_class = q[q[:, 0] == row[0]]
            if len(same_class):
                found += int(
                    iou(row[None, 2:], same_class[:, 2:], coords="corners").max() >= min_iou
                )
        extra += len(q)
    return total, found, extra


def _latencies(runners: dict, one, runs: int):
    """Seconds per call of each runner on `one`, called in turn `runs` times after 3 warm-up
    calls each; and the load average before the timing."""
    import numpy as np

    for run in runners.values():
        for _ in range(3):
            run(one)
    load_before = [round(v, 2) for v in os.getloadavg()]
    times = {name: [] for name in runners}
    for _ in range(runs):
        for name, run in runners.items():
            start = time.perf_counter()
            np.asarray(run(one))
            times[name].append(time.perf_counter() - start)
    return times, load_before


def main(argv=None) -> dict:
    args = _parse_args(argv)
    import keras
    import numpy as np

    from ssd_keras.data import evaluation_resize, load_voc
    from ssd_keras.optimize import export_run
    from ssd_keras.predict import Predictor, load_model

    model, config = load_model(args.run)
    train_data = load_voc(args.data, "train", config.classes)
    test_data = load_voc(args.data, args.split, config.classes)
    int8_file = Path(tempfile.mkdtemp()) / "model_int8.tflite"
    export_run(
        args.run,
        int8_file,
        "tflite",
        quantization="int8",
        calibration_data=train_data,
        num_calibration_samples=args.calibration,
    )
    int8_model, _ = load_model(int8_file)

    batches = test_data.generate(
        batch_size=test_data.get_dataset_size(),
        shuffle=False,
        transformations=evaluation_resize(config),
        returns=("processed_images",),
    )
    images = next(batches)
    images = np.asarray(images[0] if isinstance(images, (tuple, list)) else images, "float32")
    total, found, extra = _agreement(
        Predictor(model, config, confidence_thresh=args.confidence)(images),
        Predictor(int8_model, config, confidence_thresh=args.confidence)(images),
        args.min_iou,
    )
    runners = {"keras": model.predict_on_batch, "tflite_int8": int8_model.predict}
    times, load_before = _latencies(runners, images[:1], args.runs)
    median = {name: statistics.median(values) for name, values in times.items()}
    best = {name: min(values) for name, values in times.items()}
    report = {
        "benchmark": "int8_agreement",
        "run": str(Path(args.run).resolve()),
        "model": config.model,
        "image_size": list(config.image_size),
        "test_images": int(len(images)),
        "confidence": args.confidence,
        "min_iou": args.min_iou,
        "keras_detections": total,
        "found_by_int8": found,
        "int8_detections": extra,
        "keras_ms_median": round(1000 * median["keras"], 2),
        "int8_ms_median": round(1000 * median["tflite_int8"], 2),
        "keras_ms_best": round(1000 * best["keras"], 2),
        "int8_ms_best": round(1000 * best["tflite_int8"], 2),
        "speedup_median": round(median["keras"] / median["tflite_int8"], 2),
        "speedup_best": round(best["keras"] / best["tflite_int8"], 2),
        "runs": args.runs,
        "load_average_before": load_before,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "backend": keras.backend.backend(),
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
