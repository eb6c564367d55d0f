"""Anchor coverage at IoU 0.5 of SSD7's default anchors vs anchors fitted to the data.

For BCCD (3 classes, many small boxes) and raccoon (1 class, large boxes) from
``../shared/data``: anchors are fitted on the ``train`` split (`ssd_keras.inspection`,
`fit_anchors`) and the coverage (fraction of ground-truth boxes whose best anchor IoU reaches
0.5, overall and per COCO size bucket in input pixels) is measured on ``train`` and on the held
out ``test`` split, for the default and the fitted anchors. Issue 16's targets: fitted >=
default in every size bucket, and >= 0.95 overall where the default is below 0.95.

Prints one JSON object (also written with ``--out FILE``)::

    {"results": [{"dataset", "image_size", "split", "default": {"overall", "per_size", ...},
     "fitted": {...}, "targets_met": bool}, ...], "scales": {...}, "fit_seconds": ...}

Usage::

    python bench/anchor_coverage.py
    python bench/anchor_coverage.py --image-size 300 480 --out coverage.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_report  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
DATASETS = {
    "bccd": (SHARED / "bccd" / "BCCD", ["background", "RBC", "WBC", "Platelets"]),
    "raccoon": (SHARED / "raccoon", ["background", "raccoon"]),
}


def _row(coverage, boxes) -> dict:
    valid = (boxes.widths > 0) & (boxes.heights > 0)
    summary = coverage.summary(boxes.class_ids[valid], boxes.areas[valid])
    return {
        "overall": summary["fraction_matched"],
        "mean_best_iou": summary["mean_best_iou"],
        "anchors_per_box": summary["anchors_per_box"]["mean"],
        "per_size": {
            name: {"boxes": row["boxes"], "fraction": row["fraction_matched"]}
            for name, row in summary["per_size"].items()
        },
    }


def _parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument(
        "--datasets", nargs="+", choices=sorted(DATASETS), default=["bccd", "raccoon"]
    )
    parser.add_argument("--iou", type=float, default=0.5)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    for name in args.datasets:
        root, _ = DATASETS[name]
        if not (root / "ImageSets" / "Main" / "train.txt").is_file():
            parser.exit(2, f"{name} not found at {root}\n")
    return args


def _split_result(name, split, config, fitted_config, predictor_sizes, args) -> dict:
    """Coverage of one dataset split by the default and the fitted anchors, and the targets."""
    from data_generator.dataset_inspection import collect_boxes
    from ssd_encoder_decoder.anchor_coverage import SIZE_BUCKETS, anchor_coverage, model_anchors
    from ssd_keras.data import load_voc
    from ssd_keras.inspection import anchor_layers

    root, classes = DATASETS[name]
    boxes = collect_boxes(load_voc(root, split, classes), config.image_size)
    valid = (boxes.widths > 0) & (boxes.heights > 0)
    rows = {}
    for arm, arm_config in (("default", config), ("fitted", fitted_config)):
        anchors = model_anchors(
            config.img_height,
            config.img_width,
            predictor_sizes,
            anchor_layers(arm_config, predictor_sizes),
        )
        coverage = anchor_coverage(boxes.boxes[valid], boxes.box_image[valid], anchors, args.iou)
        rows[arm] = _row(coverage, boxes)
    buckets_ok = all(
        rows["default"]["per_size"][b]["boxes"] == 0
        or rows["fitted"]["per_size"][b]["fraction"] >= rows["default"]["per_size"][b]["fraction"]
        for b, _, _ in SIZE_BUCKETS
    )
    overall_ok = rows["default"]["overall"] >= 0.95 or rows["fitted"]["overall"] >= 0.95
    return {
        "dataset": name,
        "image_size": list(args.image_size),
        "split": split,
        "boxes": int(valid.sum()),
        **rows,
        "fitted_ge_default_every_bucket": buckets_ok,
        "overall_target_met": overall_ok,
        "targets_met": bool(buckets_ok and overall_ok),
    }


def main(argv=None) -> dict:
    args = _parse_args(argv)
    import numpy as np

    from ssd_keras.config import RunConfig
    from ssd_keras.data import load_voc
    from ssd_keras.inspection import fit_dataset_anchors

    results, fitted_settings, seconds = [], {}, {}
    for name in args.datasets:
        root, classes = DATASETS[name]
        config = RunConfig.create("ssd7", classes, image_size=args.image_size)
        predictor_sizes = config.predictor_sizes()
        train_data = load_voc(root, "train", classes)
        started = time.perf_counter()
        fit, _ = fit_dataset_anchors(
            train_data, config, args.iou, predictor_sizes=predictor_sizes, progress=False
        )
        seconds[name] = round(time.perf_counter() - started, 2)
        fitted_config = RunConfig.create(
            "ssd7",
            classes,
            image_size=args.image_size,
            scales=fit.scales,
            aspect_ratios_per_layer=fit.aspect_ratios_per_layer,
        )
        fitted_settings[name] = {
            "scales": fit.scales,
            "aspect_ratios_per_layer": fit.aspect_ratios_per_layer,
            "improved": fit.improved,
        }
        for split in ("train", "test"):
            results.append(_split_result(name, split, config, fitted_config, predictor_sizes, args))
    report = {
        "benchmark": "anchor_coverage",
        "model": "ssd7",
        "iou": args.iou,
        "results": results,
        "fitted": fitted_settings,
        "fit_seconds": seconds,
        "numpy": np.__version__,
    }
    return write_report(report, args.out)


if __name__ == "__main__":
    main()
