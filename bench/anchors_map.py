"""mAP study on BCCD: default anchors vs anchors fitted to the data vs fitted + focal loss.

SSD7 (240x320, variances 0.1/0.1/0.2/0.2, the SSD7 recipe otherwise: Adam 1e-3, constant-size
augmentation, batch 8) trains on BCCD's ``train`` split for the same wall-clock budget in every
arm and seed, then is evaluated (VOC 11-point and all-point mAP, IoU 0.5) on the ``test`` split.
The fitted anchors are fitted once on the training split (`ssd_keras.inspection`). Arms run in
turns per seed (default, fitted, focal, then the next seed) so that machine load hits them alike.

The defaults are the full protocol of issue 16 (3 arms x 3 seeds x 15 minutes, about 2.5 hours
with evaluation); ``--minutes`` and ``--seeds`` shrink it.

Prints one JSON object (also written to ``<out>/anchors_map.json``)::

    {"arms": {"default": {"runs": [{"seed", "mAP_11point", "mAP_all_point", "steps", ...}],
     "mean_11point", "spread_11point", ...}, ...}, "fitted_minus_default_11point": ...,
     "fitted_beats_default_by_more_than_spread": bool, "anchors": {...}, "machine": {...}}

Usage::

    python bench/anchors_map.py                          # the full protocol
    python bench/anchors_map.py --minutes 4 --seeds 0    # a reduced run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine_info, write_report  # noqa: E402

BCCD = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "bccd" / "BCCD"
CLASSES = ["background", "RBC", "WBC", "Platelets"]
ARMS = ("default", "fitted", "fitted_focal")


VARIANCES = [0.1, 0.1, 0.2, 0.2]


def _parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(BCCD), help="the BCCD folder (VOC layout)")
    parser.add_argument(
        "--classes", default=",".join(CLASSES), help="class names, background first (BCCD's)"
    )
    parser.add_argument("--image-size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="data loading threads")
    parser.add_argument("--out", default="runs/bench_anchors_map")
    args = parser.parse_args(argv)

    if not (Path(args.data) / "ImageSets" / "Main" / "train.txt").is_file():
        parser.exit(2, f"BCCD not found at {args.data} (expected ImageSets/Main/train.txt)\n")
    return args


def _configs(train_data, classes, image_size):
    """SSD7's default anchors and the anchors fitted to `train_data`: (default, fitted, fit)."""
    from ssd_keras.config import RunConfig
    from ssd_keras.inspection import fit_dataset_anchors

    default = RunConfig.create("ssd7", classes, image_size=image_size, variances=VARIANCES)
    fit, _ = fit_dataset_anchors(train_data, default, progress=False)
    fitted = RunConfig.create(
        "ssd7",
        classes,
        image_size=image_size,
        variances=VARIANCES,
        scales=fit.scales,
        aspect_ratios_per_layer=fit.aspect_ratios_per_layer,
    )
    return default, fitted, fit


def _run(args, config, arm, seed, train_data, test_data, out) -> dict:
    """Train one arm for ``--minutes`` with `seed`, evaluate it on test: its record."""
    from ssd_keras.callbacks import StopAfterMinutes
    from ssd_keras.evaluate import evaluate
    from ssd_keras.train import train

    stop = StopAfterMinutes(args.minutes, per_batch=True)
    started = time.perf_counter()
    result = train(
        config,
        train_data,
        out / f"{arm}_seed{seed}",
        epochs=10**4,
        batch_size=args.batch_size,
        early_stopping_patience=None,
        overwrite=True,
        seed=seed,
        extra_callbacks=[stop],
        verbose=0,
        loss="focal" if arm == "fitted_focal" else "softmax",
        mixed_precision=args.mixed_precision,
        workers=args.workers,
    )
    minutes = (time.perf_counter() - started) / 60
    metrics = evaluate(result.model, config, test_data, out_dir=None, verbose=False)
    return {
        "seed": seed,
        "mAP_11point": metrics["mAP_11point"],
        "mAP_all_point": metrics["mAP_all_point"],
        "per_class_ap_11point": {
            name: row["ap_11point"] for name, row in metrics["per_class"].items()
        },
        "epochs": len(result.history["loss"]),
        "final_loss": float(result.history["loss"][-1]),
        "train_minutes": round(minutes, 2),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def _summarise(runs: dict) -> dict:
    """Per arm: its runs and the mean and spread (max - min) of their mAPs."""
    arms = {}
    for arm, records in runs.items():
        values = [r["mAP_11point"] for r in records]
        all_point = [r["mAP_all_point"] for r in records]
        arms[arm] = {
            "runs": records,
            "mean_11point": sum(values) / len(values),
            "spread_11point": max(values) - min(values),
            "mean_all_point": sum(all_point) / len(all_point),
            "spread_all_point": max(all_point) - min(all_point),
        }
    return arms


def main(argv=None) -> dict:
    args = _parse_args(argv)
    import keras

    from ssd_keras.data import load_voc

    classes = args.classes.split(",")
    train_data = load_voc(args.data, "train", classes)
    test_data = load_voc(args.data, "test", classes)
    default, fitted, fit = _configs(train_data, classes, args.image_size)
    configs = {"default": default, "fitted": fitted, "fitted_focal": fitted}
    out = Path(args.out)
    runs = {arm: [] for arm in args.arms}
    load_start = os.getloadavg()
    for seed in args.seeds:
        for arm in args.arms:
            record = _run(args, configs[arm], arm, seed, train_data, test_data, out)
            runs[arm].append(record)
            print(json.dumps({"arm": arm, **record}), flush=True)
            keras.backend.clear_session()

    arms = _summarise(runs)
    report = {
        "benchmark": "anchors_map",
        "protocol": {
            "data": str(args.data),
            "model": "ssd7",
            "image_size": list(args.image_size),
            "variances": VARIANCES,
            "batch_size": args.batch_size,
            "minutes_per_run": args.minutes,
            "seeds": args.seeds,
            "mixed_precision": args.mixed_precision,
            "workers": args.workers,
            "train_images": train_data.get_dataset_size(),
            "test_images": test_data.get_dataset_size(),
        },
        "anchors": {
            "default": {
                "scales": default.model_kwargs["scales"],
                "aspect_ratios": default.model_kwargs["aspect_ratios_global"],
                "coverage_train": fit.start_coverage.matched.mean(),
            },
            "fitted": {
                "scales": fit.scales,
                "aspect_ratios_per_layer": fit.aspect_ratios_per_layer,
                "coverage_train": fit.coverage.matched.mean(),
            },
        },
        "arms": arms,
        "machine": machine_info(load_start),
    }
    if "default" in arms and "fitted" in arms:
        gain = arms["fitted"]["mean_11point"] - arms["default"]["mean_11point"]
        spread = max(arms["fitted"]["spread_11point"], arms["default"]["spread_11point"])
        report["fitted_minus_default_11point"] = gain
        report["seed_spread_11point"] = spread
        report["fitted_beats_default_by_more_than_spread"] = bool(
            len(args.seeds) > 1 and gain > spread
        )
    return write_report(report, out / "anchors_map.json", default=float)


if __name__ == "__main__":
    main()
