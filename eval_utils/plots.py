"""Plots of an evaluation, saved to files: precision-recall curves and a bar chart of APs.

Uses matplotlib's non-interactive Agg canvas directly (no pyplot, no global backend switch), so
it works on headless machines and does not disturb a notebook's own backend.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _class_name(class_names: Sequence[str] | None, class_id: int) -> str:
    return str(class_names[class_id]) if class_names is not None else f"class {class_id}"


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "class"


def plot_precision_recall_curves(
    cumulative_precisions: Sequence[np.ndarray],
    cumulative_recalls: Sequence[np.ndarray],
    out_dir: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    average_precisions: Sequence[float] | None = None,
    file_format: str = "png",
    dpi: int = 100,
) -> list[Path]:
    """One precision-recall curve per class, each saved to ``<out_dir>/pr_<id>_<name>.<fmt>``.

    Each plot shows the raw curve (precision after each prediction, by descending confidence)
    and its non-increasing envelope, the curve that the all-point AP integrates.

    Args:
        cumulative_precisions: per class id ``(n_c,)`` arrays (index 0, the background, skipped),
            e.g. ``Evaluator.cumulative_precisions``.
        cumulative_recalls: per class id ``(n_c,)`` arrays.
        out_dir: folder for the images (created if needed).
        class_names: names indexed by class id, or None.
        average_precisions: per class id APs to put in the titles, or None.
        file_format: any format matplotlib writes (``'png'``, ``'pdf'``, ``'svg'``).
        dpi: resolution of raster formats.

    Returns:
        The paths written, in class order. Classes whose recall is undefined (no ground truth)
        get a plot that says so.
    """
    if len(cumulative_precisions) != len(cumulative_recalls):
        raise ValueError(
            f"got {len(cumulative_precisions)} precision arrays and {len(cumulative_recalls)} "
            "recall arrays"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for class_id in range(1, len(cumulative_precisions)):
        precision = np.asarray(cumulative_precisions[class_id], dtype=np.float64)
        recall = np.asarray(cumulative_recalls[class_id], dtype=np.float64)
        name = _class_name(class_names, class_id)
        figure = _figure(5, 4.5)
        axes = figure.add_subplot()
        if recall.size and not np.any(np.isnan(recall)):
            envelope = np.maximum.accumulate(precision[::-1])[::-1]
            axes.plot(recall, precision, color="0.6", lw=1, label="precision")
            # The envelope value at recall r_i holds on (r_{i-1}, r_i]; all-point AP is its area.
            axes.step(
                np.r_[0.0, recall],
                np.r_[envelope[0], envelope],
                where="pre",
                color="C0",
                lw=2,
                label="envelope",
            )
            axes.legend(loc="lower left")
        else:
            reason = "no ground truth" if np.any(np.isnan(recall)) else "no predictions"
            axes.text(0.5, 0.5, reason, ha="center", va="center", transform=axes.transAxes)
        title = name
        if average_precisions is not None and not np.isnan(average_precisions[class_id]):
            title += f"  (AP {average_precisions[class_id]:.3f})"
        axes.set(xlim=(0, 1.01), ylim=(0, 1.01), xlabel="recall", ylabel="precision", title=title)
        axes.grid(alpha=0.3)
        path = out_dir / f"pr_{class_id:03d}_{_safe_filename(name)}.{file_format}"
        figure.savefig(path, dpi=dpi, bbox_inches="tight")
        paths.append(path)
    return paths


def plot_average_precisions(
    average_precisions: Sequence[float],
    out_file: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    mean_average_precision: float | None = None,
    dpi: int = 100,
) -> Path:
    """Horizontal bar chart of the per-class APs (index 0, the background, skipped).

    Classes with an undefined AP (NaN, no ground truth) are labelled ``n/a``. A dashed line marks
    the mAP when given.

    Returns:
        ``out_file`` as a Path (its suffix sets the format).
    """
    aps = np.asarray(average_precisions, dtype=np.float64)[1:]
    names = [_class_name(class_names, c) for c in range(1, aps.shape[0] + 1)]
    figure = _figure(7, 0.3 * len(names) + 1.5)
    axes = figure.add_subplot()
    positions = np.arange(len(names))
    axes.barh(positions, np.nan_to_num(aps, nan=0.0), color="C0")
    for y, value in zip(positions, aps):
        label = "n/a" if np.isnan(value) else f"{value:.3f}"
        axes.text(0.0 if np.isnan(value) else value, y, f" {label}", va="center", fontsize=8)
    axes.set_yticks(positions, names)
    axes.invert_yaxis()
    axes.set(xlim=(0, 1.1), xlabel="average precision")
    if mean_average_precision is not None and not np.isnan(mean_average_precision):
        axes.axvline(mean_average_precision, color="C3", ls="--", label="mAP")
        axes.legend(loc="lower right")
        axes.set_title(f"mAP {mean_average_precision:.3f}")
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, dpi=dpi, bbox_inches="tight")
    return out_file
