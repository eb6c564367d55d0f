"""The training log (``training_log.csv``, written by Keras' CSVLogger) read back and plotted as
``loss.png`` (re-exported by `ssd_keras.train`)."""

from __future__ import annotations

import math
from pathlib import Path


def read_log(path) -> dict:
    """The CSVLogger file as ``{column: [floats]}``."""
    import csv

    columns: dict = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = math.nan
                columns.setdefault(key, []).append(number)
    return columns


def plot_loss_curve(log_path, out_file):
    """Plots loss (and val_loss) per epoch from the training log; returns the path or None."""
    log_path = Path(log_path)
    if not log_path.is_file():
        return None
    columns = read_log(log_path)
    if not columns.get("epoch"):
        return None
    # A bare Figure (no pyplot): writes the file without touching the global backend, so
    # notebooks keep their inline plots.
    from matplotlib.figure import Figure

    epochs = [int(e) + 1 for e in columns["epoch"]]
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    axes.plot(epochs, columns["loss"], marker="o", label="training loss")
    if any(math.isfinite(v) for v in columns.get("val_loss", [])):
        axes.plot(epochs, columns["val_loss"], marker="o", label="validation loss")
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(xlabel="epoch", ylabel="SSD loss", title="Training")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    out_file = Path(out_file)
    figure.savefig(out_file, dpi=100)
    return out_file
