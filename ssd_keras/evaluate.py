"""Pascal VOC evaluation of a trained run: mAP (11-point and all-point), per-class table, plots."""

from __future__ import annotations

import json
import math
from pathlib import Path


def evaluate(
    model,
    config,
    dataset,
    batch_size: int = 8,
    out_dir=None,
    plots: bool = True,
    verbose: bool = True,
    confidence_thresh: float = 0.01,
    iou_threshold: float = 0.45,
    top_k: int = 200,
    matching_iou_threshold: float = 0.5,
) -> dict:
    """VOC mAP of a training-mode model on a labelled `DataGenerator`.

    Images are resized to the input size; raw outputs are decoded with `decode_detections`
    (per-class NMS) and mapped back to the original image; matching uses VOC's rules
    (``border_pixels='include'``, difficult boxes ignored). Both AP flavours come from the same
    precision/recall curves: VOC2007 11-point (``'sample'``) and VOC2010+ all-point
    (``'integrate'``).

    Args:
        model: a training-mode SSD model (output ``(batch, n_anchors, n_classes + 1 + 12)``),
            or a runner of an exported one (`model_optimization.load_runner`, e.g. an int8
            ``.tflite``: it has the same ``predict``).
        config: its `RunConfig`.
        dataset: a `DataGenerator` with labels.
        batch_size: prediction batch size.
        out_dir: where to write ``metrics.json``, ``average_precisions.png`` and ``pr_curves/``
            (None: write nothing).
        plots: write the plots (with ``out_dir``).
        verbose: print progress and the per-class table.
        confidence_thresh, iou_threshold, top_k: decoder settings (the original evaluation
            notebook's 0.01 / 0.45 / 200).
        matching_iou_threshold: IoU a detection needs to be a true positive.

    Returns:
        ``{"mAP_11point", "mAP_all_point", "n_images", "per_class": {name: {"ap_11point",
        "ap_all_point", "n_ground_truth"}}}`` (APs of classes without ground truth are None).
    """
    from eval_utils.average_precision_evaluator import Evaluator

    evaluator = Evaluator(
        model, n_classes=config.n_classes, data_generator=dataset, model_mode="training"
    )
    mean_11 = evaluator(
        config.img_height,
        config.img_width,
        batch_size=batch_size,
        matching_iou_threshold=matching_iou_threshold,
        average_precision_mode="sample",
        num_recall_points=11,
        verbose=verbose,
        decoding_confidence_thresh=confidence_thresh,
        decoding_iou_threshold=iou_threshold,
        decoding_top_k=top_k,
        decoding_normalize_coords=config.normalize_coords,
    )
    aps_11 = list(evaluator.average_precisions)
    aps_all = evaluator.compute_average_precisions(mode="integrate", verbose=False, ret=True)
    mean_all = evaluator.compute_mean_average_precision(ret=True)

    def number(value):
        value = float(value)
        return None if math.isnan(value) else value

    per_class = {}
    for class_id in range(1, config.n_classes + 1):
        per_class[config.classes[class_id]] = {
            "ap_11point": number(aps_11[class_id]),
            "ap_all_point": number(aps_all[class_id]),
            "n_ground_truth": int(evaluator.num_gt_per_class[class_id]),
        }
    result = {
        "mAP_11point": number(mean_11),
        "mAP_all_point": number(mean_all),
        "n_images": int(dataset.get_dataset_size()),
        "per_class": per_class,
    }
    if verbose:
        print(format_table(result))
    if out_dir is not None:
        result["files"] = _write_outputs(
            result, evaluator, config, Path(out_dir), aps_11, aps_all, mean_11, plots
        )
    return result


def _write_outputs(
    result: dict, evaluator, config, out_dir: Path, aps_11, aps_all, mean_11, plots: bool
) -> dict:
    """Writes ``metrics.json`` (``result`` as it is now) and, with ``plots``, the AP bar chart
    (11-point APs) and the precision/recall curves (all-point APs); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    files = {"metrics": str(out_dir / "metrics.json")}
    if plots:
        from eval_utils.plots import plot_average_precisions, plot_precision_recall_curves

        bars = plot_average_precisions(
            aps_11,
            out_dir / "average_precisions.png",
            class_names=config.classes,
            mean_average_precision=mean_11,
        )
        curves = plot_precision_recall_curves(
            evaluator.cumulative_precisions,
            evaluator.cumulative_recalls,
            out_dir / "pr_curves",
            class_names=config.classes,
            average_precisions=aps_all,
        )
        files["ap_chart"] = str(bars)
        files["pr_curves"] = [str(p) for p in curves]
    return files


def format_table(result: dict) -> str:
    """The per-class AP table as text."""
    width = max([len("class")] + [len(name) for name in result["per_class"]])
    lines = [f"{'class':<{width}}  {'n_gt':>6}  {'AP (11-pt)':>10}  {'AP (all-pt)':>11}"]

    def cell(value, size):
        return f"{'n/a':>{size}}" if value is None else f"{value:>{size}.4f}"

    for name, row in result["per_class"].items():
        lines.append(
            f"{name:<{width}}  {row['n_ground_truth']:>6}  {cell(row['ap_11point'], 10)}  "
            f"{cell(row['ap_all_point'], 11)}"
        )
    lines.append(
        f"{'mAP':<{width}}  {'':>6}  {cell(result['mAP_11point'], 10)}  "
        f"{cell(result['mAP_all_point'], 11)}"
    )
    return "\n".join(lines)


def summary(result: dict) -> dict:
    """The numbers of a result without the file list (for JSON output)."""
    return {key: value for key, value in result.items() if key != "files"}
