"""Speed of Pascal VOC matching + average precision on a large synthetic dataset.

5,000 images, 20 classes, 15,000 ground-truth boxes (10 % difficult) and 20,000 to 100,000
detections (jittered copies of ground-truth boxes, duplicates and random boxes), all from a
seeded generator. For each detection count it times:

- ``flat``: `match_detection_arrays` + `precision_recall` + `average_precision` for all classes,
  starting from flat arrays (the vectorised core);
- ``from_prediction_lists``: `evaluate_predictions` from the original's per-class lists of
  ``(image_id, conf, xmin, ymin, xmax, ymax)`` tuples (adds the conversion of Python tuples);

and, at the smallest size, a per-detection loop written the way the original Evaluator matched
(one IoU call per detection: ``voc_match`` of ``bench/loop_references.py``), as a reference for
the speed-up; its TP/FP must equal ours.

Prints one JSON object. Usage: ``python bench/eval_speed.py [--sizes 20000 40000 ...]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loop_references import voc_match  # noqa: E402
from eval_utils.average_precision_evaluator import (  # noqa: E402
    average_precision,
    evaluate_predictions,
    match_detection_arrays,
    precision_recall,
)

N_IMAGES, N_CLASSES, N_GT = 5_000, 20, 15_000
IMG_W, IMG_H = 500, 375


def make_ground_truth(rng):
    image = np.sort(rng.integers(0, N_IMAGES, N_GT))
    cls = rng.integers(1, N_CLASSES + 1, N_GT)
    wh = rng.integers(16, 200, size=(N_GT, 2))
    xy = rng.integers(0, [IMG_W, IMG_H], size=(N_GT, 2)) % np.maximum(1, [IMG_W, IMG_H] - wh)
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float64)
    difficult = rng.random(N_GT) < 0.1
    return image, cls, boxes, difficult


def make_detections(rng, gt, n):
    g_image, g_cls, g_boxes, _ = gt
    n_copies = n // 2  # jittered copies of random GT boxes (so duplicates too)
    pick = rng.integers(0, N_GT, n_copies)
    jitter = rng.normal(0, 6, size=(n_copies, 4))
    copies = g_boxes[pick] + jitter
    n_random = n - n_copies
    wh = rng.integers(16, 200, size=(n_random, 2))
    xy = rng.integers(0, [IMG_W, IMG_H], size=(n_random, 2))
    randoms = np.concatenate([xy, xy + wh], axis=1).astype(np.float64)
    image = np.concatenate([g_image[pick], rng.integers(0, N_IMAGES, n_random)])
    cls = np.concatenate([g_cls[pick], rng.integers(1, N_CLASSES + 1, n_random)])
    conf = np.concatenate([rng.beta(5, 2, n_copies), rng.beta(2, 5, n_random)])
    boxes = np.round(np.concatenate([copies, randoms]), 1)
    order = rng.permutation(n)
    return image[order], cls[order], conf[order], boxes[order]


def run_flat(det, gt, mode="sample"):
    m = match_detection_arrays(*det, *gt, n_classes=N_CLASSES, border_pixels="include")
    num_gt = np.bincount(gt[1][~gt[3]], minlength=N_CLASSES + 1)
    aps = []
    for c in range(1, N_CLASSES + 1):
        p, r = precision_recall(
            m.cumulative_true_positives[c], m.cumulative_false_positives[c], int(num_gt[c])
        )
        aps.append(average_precision(p, r, mode))
    return m, float(np.mean(aps))


def to_original_format(det, gt):
    d_image, d_cls, d_conf, d_boxes = det
    g_image, g_cls, g_boxes, g_difficult = gt
    ids = [f"{i:06d}" for i in range(N_IMAGES)]
    preds = [[] for _ in range(N_CLASSES + 1)]
    for i, c, conf, box in zip(d_image.tolist(), d_cls.tolist(), d_conf.tolist(), d_boxes.tolist()):
        preds[c].append((ids[i], conf, *box))
    labels = [[] for _ in range(N_IMAGES)]
    neutral = [[] for _ in range(N_IMAGES)]
    for i, c, box, flag in zip(g_image, g_cls, g_boxes, g_difficult):
        labels[i].append([c, *box])
        neutral[i].append(bool(flag))
    return preds, labels, neutral, ids


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def _parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[20_000, 40_000, 60_000, 80_000, 100_000]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-reference", action="store_true", help="skip the per-detection loop")
    return parser.parse_args(argv)


def main(argv=None):
    args = _parse_args(argv)

    rng = np.random.default_rng(args.seed)
    gt = make_ground_truth(rng)
    rows = []
    reference = None
    for n in args.sizes:
        det = make_detections(np.random.default_rng([args.seed, n]), gt, n)
        t_flat, (match, mean_ap) = best_of(lambda det=det: run_flat(det, gt), args.repeats)
        t_integrate, _ = best_of(lambda det=det: run_flat(det, gt, "integrate"), args.repeats)
        preds, labels, neutral, ids = to_original_format(det, gt)
        t_lists, result = best_of(
            lambda p=preds, lab=labels, i=ids, nt=neutral: evaluate_predictions(
                p, lab, i, N_CLASSES, eval_neutral=nt
            ),
            args.repeats,
        )
        assert abs(result.mean_average_precision - mean_ap) < 1e-12
        row = {
            "n_detections": n,
            "flat_s": round(t_flat, 4),
            "flat_integrate_s": round(t_integrate, 4),
            "from_prediction_lists_s": round(t_lists, 4),
            "mAP_11_point": round(mean_ap, 6),
            "true_positives": int(sum(int(t.sum()) for t in match.true_positives)),
        }
        if reference is None and not args.no_reference:
            t_ref, ref = best_of(
                lambda: voc_match(preds, labels, neutral, ids, N_CLASSES),  # noqa: B023
                1,
            )
            for c in range(1, N_CLASSES + 1):
                assert np.array_equal(ref[c][0], result.true_positives[c]), c
                assert np.array_equal(ref[c][1], result.false_positives[c]), c
            reference = {
                "n_detections": n,
                "per_detection_loop_s": round(t_ref, 4),
                "speedup_flat": round(t_ref / t_flat, 1),
                "speedup_from_prediction_lists": round(t_ref / t_lists, 1),
                "same_tp_fp": True,
            }
        rows.append(row)

    ns = np.array([r["n_detections"] for r in rows], dtype=float)
    scaling = {}
    if len(rows) > 1:
        for key in ("flat_s", "from_prediction_lists_s"):
            times = np.array([r[key] for r in rows])
            slope = np.polyfit(np.log(ns), np.log(times), 1)[0]
            scaling[key] = {
                "loglog_slope": round(float(slope), 3),
                "us_per_detection_at_max": round(1e6 * times[-1] / ns[-1], 2),
            }
    print(
        json.dumps(
            {
                "benchmark": "eval_speed",
                "n_images": N_IMAGES,
                "n_classes": N_CLASSES,
                "n_ground_truth": N_GT,
                "border_pixels": "include",
                "repeats": args.repeats,
                "seed": args.seed,
                "python": platform.python_version(),
                "numpy": np.__version__,
                "machine": platform.machine(),
                "results": rows,
                "scaling": scaling,
                "reference": reference,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
