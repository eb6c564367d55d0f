"""``inspect`` and ``anchors``: what a dataset holds, how the model's anchors cover it, and
anchors fitted to it.

`inspect_dataset` writes ``inspect.json`` and three plots into a folder: ``box_shapes.png`` (box
width x height in input pixels per class, the anchor shapes of every predictor layer overlaid),
``best_iou.png`` (histogram of each box's best IoU with any anchor, the matching threshold
marked) and ``coverage_by_size.png`` (fraction of boxes matched per COCO size bucket).

`fit_dataset_anchors` runs `ssd_encoder_decoder.anchor_coverage.fit_anchors` for a run
configuration and `write_anchors` saves the result as ``anchors.json``, which
``train --anchors`` reads (`read_anchors`) into the run's ``config.json``.

The numbers come from the numpy packages (`data_generator.dataset_inspection`,
`ssd_encoder_decoder.anchor_coverage`); this module only assembles, plots and writes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from data_generator.dataset_inspection import box_statistics, collect_boxes
from ssd_encoder_decoder.anchor_boxes import ANCHOR_CONFIG_KEYS, resolve_anchor_config
from ssd_encoder_decoder.anchor_coverage import (
    SIZE_BUCKETS,
    anchor_coverage,
    fit_anchors,
    model_anchors,
)
from ssd_keras.config import read_json

INSPECT_FILE = "inspect.json"
ANCHORS_FORMAT = "ssd_keras.anchors/1"


def anchor_layers(config, predictor_sizes):
    """The `PredictorLayerAnchors` of a `RunConfig`'s model."""
    kwargs = {k: config.model_kwargs[k] for k in ANCHOR_CONFIG_KEYS if k in config.model_kwargs}
    return resolve_anchor_config(len(predictor_sizes), **kwargs)


def _threshold(config, iou_threshold) -> float:
    if iou_threshold is not None:
        return float(iou_threshold)
    return float(config.encoder_kwargs.get("pos_iou_threshold", 0.5))


def inspect_dataset(
    dataset,
    config,
    out_dir=None,
    iou_threshold: float | None = None,
    predictor_sizes=None,
    progress: bool = True,
) -> dict:
    """Dataset statistics and anchor coverage for ``config``'s model; writes the report.

    Args:
        dataset: a labelled `DataGenerator`.
        config: the `RunConfig` (model, classes, input size, anchors).
        out_dir: folder for ``inspect.json`` and the PNG plots, or None (nothing written).
        iou_threshold: the matching threshold (default: the encoder's ``pos_iou_threshold``).
        predictor_sizes: ``(n_layers, 2)`` feature map sizes (default: built from ``config``,
            which imports Keras).
        progress: tqdm progress bars on the passes over the images.

    Returns:
        The ``inspect.json`` dict: ``{"model", "image_size", "dataset": box_statistics,
        "bad_items": [...], "anchors": {...}, "coverage": AnchorCoverage.summary}``.
    """
    if predictor_sizes is None:
        predictor_sizes = config.predictor_sizes()
    threshold = _threshold(config, iou_threshold)
    boxes = collect_boxes(dataset, config.image_size, progress=progress)
    layers = anchor_layers(config, predictor_sizes)
    anchors = model_anchors(
        config.img_height,
        config.img_width,
        predictor_sizes,
        layers,
        bool(config.model_kwargs.get("clip_boxes", False)),
    )
    coverage = anchor_coverage(boxes.boxes, boxes.box_image, anchors, threshold, progress)
    report = {
        "model": config.model,
        "image_size": list(config.image_size),
        "dataset": box_statistics(boxes, config.classes),
        "bad_items": [str(issue) for issue in getattr(dataset.data_report, "issues", [])],
        "anchors": _anchor_record(layers, predictor_sizes, len(anchors)),
        "coverage": coverage.summary(boxes.class_ids, boxes.areas, config.classes),
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / INSPECT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        plot_box_shapes(boxes, layers, config, out_dir / "box_shapes.png")
        plot_best_iou({"anchors": coverage}, out_dir / "best_iou.png")
        plot_coverage_by_size({"anchors": coverage}, boxes.areas, out_dir / "coverage_by_size.png")
    return report


def _anchor_record(layers, predictor_sizes, n_anchors: int) -> dict:
    return {
        "n_anchors": int(n_anchors),
        "layers": [
            {
                "feature_map": [int(v) for v in size],
                "scale": layer.this_scale,
                "next_scale": layer.next_scale,
                "aspect_ratios": list(layer.aspect_ratios),
                "boxes_per_location": layer.n_boxes,
            }
            for size, layer in zip(predictor_sizes, layers)
        ],
    }


def summary_lines(report: dict) -> list[str]:
    """A short text summary of an ``inspect.json`` dict."""
    data, coverage = report["dataset"], report["coverage"]
    lines = [
        f"{data['n_images']} images, {data['n_boxes']} boxes, "
        f"{len(data['images_without_boxes'])} images without boxes, "
        f"{len(report['bad_items'])} bad items (input {report['image_size'][0]}x"
        f"{report['image_size'][1]}, {report['model']})",
    ]
    for name, row in data["per_class"].items():
        lines.append(f"  {name}: {row['boxes']} boxes in {row['images']} images")
    width, height = data["width"], data["height"]
    if "p50" in width:
        lines.append(
            f"box size in input pixels: width median {width['p50']:.1f} (5-95%: "
            f"{width['p5']:.1f}-{width['p95']:.1f}), height median {height['p50']:.1f} "
            f"({height['p5']:.1f}-{height['p95']:.1f})"
        )
    lines.append(
        f"anchor coverage at IoU {coverage['threshold']}: "
        f"{_percent(coverage['fraction_matched'])} of boxes matched, mean best IoU "
        f"{coverage['mean_best_iou']:.3f}, {coverage['anchors_per_box']['mean']:.1f} anchors per "
        "box"
    )
    sizes = ", ".join(
        f"{name} {_percent(row['fraction_matched'])} ({row['boxes']})"
        for name, row in coverage.get("per_size", {}).items()
    )
    lines.append(f"  per size (boxes): {sizes}")
    classes = ", ".join(
        f"{name} {_percent(row['fraction_matched'])}"
        for name, row in coverage.get("per_class", {}).items()
    )
    lines.append(f"  per class: {classes}")
    return lines


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


# --------------------------------------------------------------------------- anchors.json


def fit_dataset_anchors(
    dataset,
    config,
    iou_threshold: float | None = None,
    seed: int = 0,
    predictor_sizes=None,
    progress: bool = True,
):
    """Fits ``config``'s anchors to ``dataset`` (`fit_anchors`); returns ``(fit, boxes)``."""
    if predictor_sizes is None:
        predictor_sizes = config.predictor_sizes()
    boxes = collect_boxes(dataset, config.image_size, progress=progress)
    fit = fit_anchors(
        boxes.boxes,
        boxes.box_image,
        config.img_height,
        config.img_width,
        predictor_sizes,
        anchor_layers(config, predictor_sizes),
        threshold=_threshold(config, iou_threshold),
        clip_boxes=bool(config.model_kwargs.get("clip_boxes", False)),
        seed=seed,
        progress=progress,
    )
    return fit, boxes


def write_anchors(path, config, fit, boxes, data_source: str = "") -> dict:
    """Writes ``anchors.json``: the fitted settings and both coverages. Returns the dict."""
    valid = (boxes.widths > 0) & (boxes.heights > 0)
    areas = boxes.areas[valid]
    record = {
        "format": ANCHORS_FORMAT,
        "model": config.model,
        "image_size": list(config.image_size),
        "scales": fit.scales,
        "aspect_ratios_per_layer": fit.aspect_ratios_per_layer,
        "two_boxes_for_ar1": bool(config.model_kwargs.get("two_boxes_for_ar1", True)),
        "iou_threshold": fit.coverage.threshold,
        "improved": fit.improved,
        "data": data_source,
        "coverage_start": fit.start_coverage.summary(None, areas),
        "coverage_fitted": fit.coverage.summary(None, areas),
    }
    for key in ("coverage_start", "coverage_fitted"):
        record[key].pop("best_iou_histogram")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def read_anchors(path, model: str | None = None) -> dict:
    """Reads ``anchors.json`` and checks it; returns the builder overrides and its image size.

    Args:
        path: the file written by `write_anchors` (``python -m ssd_keras anchors``).
        model: the model it must be for, or None.

    Returns:
        ``{"image_size": (h, w), "overrides": {"scales", "aspect_ratios_per_layer",
        "two_boxes_for_ar1"}}``.

    Raises:
        ValueError: naming the file, the field and the value that is wrong.
    """
    path = Path(path)
    data = read_json(path, f"anchors file not found: {path}")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for key in ("model", "image_size", "scales", "aspect_ratios_per_layer"):
        if key not in data:
            raise ValueError(f"{path}: missing field {key!r}")
    if model is not None and data["model"] != model:
        raise ValueError(
            f"{path}: field 'model' is {data['model']!r}, the run's model is {model!r}"
        )
    size = data["image_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(_positive(v) for v in size)):
        raise ValueError(f"{path}: field 'image_size' must be [height, width], got {size!r}")
    scales = data["scales"]
    if not (isinstance(scales, list) and scales and all(_positive(v) for v in scales)):
        raise ValueError(f"{path}: field 'scales' must be positive numbers, got {scales!r}")
    ratios = data["aspect_ratios_per_layer"]
    if not (
        isinstance(ratios, list)
        and len(ratios) == len(scales) - 1
        and all(isinstance(r, list) and r and all(_positive(v) for v in r) for r in ratios)
    ):
        raise ValueError(
            f"{path}: field 'aspect_ratios_per_layer' must hold {len(scales) - 1} lists of "
            f"positive numbers (one per layer, len(scales) - 1), got {ratios!r}"
        )
    overrides = {
        "scales": [float(v) for v in scales],
        "aspect_ratios_per_layer": [[float(v) for v in r] for r in ratios],
    }
    if "two_boxes_for_ar1" in data:
        overrides["two_boxes_for_ar1"] = bool(data["two_boxes_for_ar1"])
    return {"image_size": (int(size[0]), int(size[1])), "overrides": overrides}


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


# --------------------------------------------------------------------------- plots


def _figure(size=(6.4, 4.8)):
    # A bare Figure (no pyplot): no global backend state, safe in notebooks and threads.
    from matplotlib.figure import Figure

    return Figure(figsize=size)


def plot_box_shapes(boxes, layers, config, out_file, fitted_layers=None) -> Path:
    """Box width x height (input pixels, log axes) per class, anchor shapes overlaid."""
    from ssd_encoder_decoder.anchor_boxes import anchor_box_sizes

    figure = _figure((7.0, 5.5))
    axes = figure.add_subplot()
    valid = (boxes.widths > 0) & (boxes.heights > 0)
    for class_id in np.unique(boxes.class_ids):
        mask = valid & (boxes.class_ids == class_id)
        name = config.classes[class_id] if class_id < len(config.classes) else str(class_id)
        axes.scatter(boxes.widths[mask], boxes.heights[mask], s=6, alpha=0.35, label=name)
    sets = [("anchors", layers, "x", "black")]
    if fitted_layers is not None:
        sets = [
            ("default anchors", layers, "x", "gray"),
            ("fitted anchors", fitted_layers, "+", "red"),
        ]
    for label, anchor_layers_, marker, colour in sets:
        for index, layer in enumerate(anchor_layers_):
            sizes = anchor_box_sizes(
                config.img_height,
                config.img_width,
                layer.this_scale,
                layer.next_scale,
                layer.aspect_ratios,
                layer.two_boxes_for_ar1,
            )
            axes.scatter(
                sizes[:, 0],
                sizes[:, 1],
                marker=marker,
                s=70,
                color=colour,
                linewidths=1.5,
                label=label if index == 0 else None,
            )
            for w, h in sizes:
                axes.annotate(
                    str(index),
                    (w, h),
                    fontsize=7,
                    color=colour,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
    axes.set(
        xscale="log",
        yscale="log",
        xlabel="box width (input pixels)",
        ylabel="box height (input pixels)",
        title=f"Boxes and anchor shapes ({config.model}, input "
        f"{config.img_height}x{config.img_width})\nnumbers: the anchor's predictor layer",
    )
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=8, markerscale=1.5)
    figure.tight_layout()
    figure.savefig(out_file, dpi=90)
    return Path(out_file)


def plot_best_iou(coverages: dict, out_file) -> Path:
    """Histogram of each box's best IoU with any anchor, one series per coverage."""
    figure = _figure((6.4, 4.0))
    axes = figure.add_subplot()
    bins = np.linspace(0, 1, 41)
    threshold = None
    for name, coverage in coverages.items():
        matched = coverage.matched.mean() if coverage.best_iou.size else 0.0
        axes.hist(coverage.best_iou, bins=bins, alpha=0.55, label=f"{name}: {matched:.1%} matched")
        threshold = coverage.threshold
    if threshold is not None:
        axes.axvline(threshold, color="black", linestyle="--", label=f"IoU {threshold}")
    axes.set(xlabel="best IoU of a box with any anchor", ylabel="boxes", title="Anchor coverage")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out_file, dpi=90)
    return Path(out_file)


def plot_coverage_by_size(coverages: dict, areas, out_file) -> Path:
    """Fraction of boxes matched per COCO size bucket, one bar per coverage."""
    from ssd_encoder_decoder.anchor_coverage import bucket_of

    buckets = bucket_of(areas)
    figure = _figure((6.4, 4.0))
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(coverages))
    positions = np.arange(len(SIZE_BUCKETS))
    for offset, (name, coverage) in enumerate(coverages.items()):
        fractions = [
            coverage.matched[buckets == b].mean() if (buckets == b).any() else 0.0
            for b in range(len(SIZE_BUCKETS))
        ]
        bars = axes.bar(positions + offset * width, fractions, width, label=name)
        axes.bar_label(bars, labels=[f"{f:.3f}" for f in fractions], fontsize=7)
    counts = np.bincount(buckets, minlength=len(SIZE_BUCKETS))
    axes.set_xticks(
        positions + width * (len(coverages) - 1) / 2,
        [f"{name}\n({count} boxes)" for (name, _, _), count in zip(SIZE_BUCKETS, counts)],
    )
    threshold = next(iter(coverages.values())).threshold if coverages else 0.5
    axes.set(
        ylim=(0, 1.1),
        ylabel=f"fraction with an anchor at IoU >= {threshold}",
        title="Coverage per size (COCO buckets, input pixels)",
    )
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(out_file, dpi=90)
    return Path(out_file)
