"""Training benchmark on real data: SSD7 (or SSD300) from scratch on BCCD, mAP against minutes.

BCCD (``../shared/data/bccd/BCCD``: 640x480 blood smear photos, classes RBC, WBC, Platelets)
trains on its ``train`` split (205 images) and is evaluated on its ``test`` split (72 images)
with the Pascal VOC protocol (IoU 0.5, 11-point and all-point AP) every ``--eval-every`` epochs.
Minutes are wall-clock training minutes (evaluation time excluded). Training stops after
``--minutes`` or ``--epochs``, whichever comes first.

Prints one JSON object (also written to ``<out>/bench_bccd.json``)::

    {"model": ..., "image_size": [h, w], "records": [{"epoch", "train_minutes", "mAP_11point",
     "mAP_all_point"}, ...], "losses": [...], "images_per_second": ..., "nan": false, ...}

Usage::

    python bench/train_bccd.py --minutes 15                       # SSD7, the CPU target
    python bench/train_bccd.py --model ssdlite --minutes 15       # SSDLite from scratch
    python bench/train_bccd.py --model ssdlite --backbone-weights imagenet --minutes 15  # online
    python bench/train_bccd.py --model ssd300 --epochs 2 --eval-every -1 --lr 1e-4  # no NaN
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine_info, write_report  # noqa: E402

BCCD = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "bccd" / "BCCD"
CLASSES = ["background", "RBC", "WBC", "Platelets"]


def _parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(BCCD), help="the BCCD folder (VOC layout)")
    parser.add_argument("--model", choices=("ssd7", "ssd300", "ssd512", "ssdlite"), default="ssd7")
    parser.add_argument(
        "--backbone-weights",
        help="imagenet or a keras.applications weights file (ssd300/512: VGG16 with top; "
        "ssdlite: MobileNetV2); default random",
    )
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"))
    parser.add_argument("--minutes", type=float, default=15.0, help="training time budget")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps-per-epoch", type=int, help="default: one pass over train")
    parser.add_argument("--augmentation", choices=("constant", "ssd", "none"))
    parser.add_argument(
        "--lr",
        type=float,
        help="initial learning rate (default: the recipe's 1e-3; SSD300/512 from scratch, "
        "without the pretrained VGG-16, diverge at 1e-3: use 1e-4)",
    )
    parser.add_argument(
        "--eval-every", type=int, default=1, help="0: only after the last epoch; -1: never"
    )
    parser.add_argument(
        "--variances",
        type=float,
        nargs=4,
        help="box-offset variances (SSD7 recipe: 1 1 1 1; SSD300's 0.1 0.1 0.2 0.2 learns "
        "localisation much faster)",
    )
    parser.add_argument("--out", default="runs/bench_bccd")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if not (Path(args.data) / "ImageSets" / "Main" / "train.txt").is_file():
        parser.exit(2, f"BCCD not found at {args.data} (expected ImageSets/Main/train.txt)\n")
    return args


def _step_timer():
    """A Keras callback that sums the training step times, the first 2 steps (graph tracing)
    left out: ``seconds`` over ``steps``."""
    import keras

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds, self.steps, self.seen = 0.0, 0, 0

        def on_train_batch_begin(self, batch, logs=None):
            self._t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seen += 1
            if self.seen > 2:
                self.seconds += time.perf_counter() - self._t
                self.steps += 1

    return Timer()


def main(argv=None) -> dict:
    args = _parse_args(argv)
    from ssd_keras.callbacks import MeanAveragePrecision, StopAfterMinutes
    from ssd_keras.config import RunConfig
    from ssd_keras.data import load_voc
    from ssd_keras.train import train

    # SSD7 and SSDLite at 240x320 (the 640x480 images halved), SSD300/512 at their own size.
    image_size = args.image_size or ((240, 320) if args.model in ("ssd7", "ssdlite") else None)
    overrides = {"variances": list(args.variances)} if args.variances else {}
    config = RunConfig.create(args.model, CLASSES, image_size=image_size, **overrides)
    train_data = load_voc(args.data, "train", CLASSES)
    test_data = load_voc(args.data, "test", CLASSES)
    every = args.eval_every if args.eval_every > 0 else 10**9
    mean_ap = MeanAveragePrecision(config, test_data, every=every, batch_size=8)
    stop = StopAfterMinutes(args.minutes, exclude=mean_ap)
    evaluation = [mean_ap] if args.eval_every >= 0 else []
    timer = _step_timer()
    load_start = os.getloadavg()
    start = time.perf_counter()
    result = train(
        config,
        train_data,
        args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        steps_per_epoch=args.steps_per_epoch,
        augmentation=args.augmentation,
        learning_rate=args.lr,
        early_stopping_patience=None,
        overwrite=True,
        seed=args.seed,
        backbone_weights=args.backbone_weights,
        extra_callbacks=[timer, *evaluation, stop],
        verbose=2,
    )
    losses = [float(v) for v in result.history["loss"]]
    report = {
        "benchmark": "train_bccd",
        "model": args.model,
        "image_size": list(config.image_size),
        "batch_size": args.batch_size,
        "augmentation": args.augmentation or "recipe default",
        "learning_rate": args.lr or "recipe default (1e-3)",
        "variances": config.model_kwargs.get("variances"),
        "backbone_weights": args.backbone_weights,
        "train_images": train_data.get_dataset_size(),
        "test_images": test_data.get_dataset_size(),
        "epochs": len(losses),
        "records": mean_ap.records,
        "best_mAP_11point": max((r["mAP_11point"] for r in mean_ap.records), default=None),
        "losses": losses,
        "nan": any(math.isnan(v) for v in losses),
        "images_per_second": timer.steps * args.batch_size / timer.seconds
        if timer.seconds
        else None,
        "wall_minutes_total": round((time.perf_counter() - start) / 60, 2),
        "eval_minutes": round(mean_ap.eval_seconds / 60, 2),
        "machine": machine_info(load_start),
    }
    return write_report(report, Path(args.out) / "bench_bccd.json")


if __name__ == "__main__":
    main()
