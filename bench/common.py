"""Set-up shared by the bench scripts: the machine block and the JSON ending of their reports,
and the presets several of them run.

Imported as ``bench.common`` (each script puts the repository root on ``sys.path`` first).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

# SSD300 VOC's SSDInputEncoder settings (the original's ssd300_training notebook).
SSD300_ENCODER_KWARGS = {
    "img_height": 300,
    "img_width": 300,
    "n_classes": 20,
    "predictor_sizes": [[38, 38], [19, 19], [10, 10], [5, 5], [3, 3], [1, 1]],
    "scales": [0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05],
    "aspect_ratios_global": None,
    "aspect_ratios_per_layer": [[1.0, 2.0, 0.5]]
    + [[1.0, 2.0, 0.5, 3.0, 1.0 / 3.0]] * 3
    + [[1.0, 2.0, 0.5]] * 2,
    "two_boxes_for_ar1": True,
    "steps": [8, 16, 32, 64, 100, 300],
    "offsets": [0.5] * 6,
    "clip_boxes": False,
    "variances": [0.1, 0.1, 0.2, 0.2],
    "matching_type": "multi",
    "pos_iou_threshold": 0.5,
    "neg_iou_limit": 0.5,
    "border_pixels": "half",
    "coords": "centroids",
    "normalize_coords": True,
}


def model_presets() -> dict:
    """Model name -> (builder, preset) of the models the speed tables compare (imports Keras)."""
    from models.keras_ssd7 import SSD7_UDACITY, build_model
    from models.keras_ssd300 import SSD300_VOC, ssd_300
    from models.keras_ssd512 import SSD512_VOC, ssd_512
    from models.keras_ssdlite import (
        SSDLITE320_MOBILENETV2,
        SSDLITE320_MOBILENETV3_LARGE,
        ssdlite,
    )

    return {
        "ssd7": (build_model, SSD7_UDACITY),
        "ssdlite": (ssdlite, SSDLITE320_MOBILENETV2),
        "ssdlite_v3": (ssdlite, SSDLITE320_MOBILENETV3_LARGE),
        "ssd300": (ssd_300, SSD300_VOC),
        "ssd512": (ssd_512, SSD512_VOC),
    }


def machine_info(load_start, **extra) -> dict:
    """The report's ``machine`` block: CPUs, platform, load averages at start (``load_start``,
    from ``os.getloadavg()``) and now, the Keras backend, then ``extra``."""
    import keras

    return {
        "cpus": os.cpu_count(),
        **extra,
        "platform": platform.platform(),
        "load_average_at_start": [round(v, 2) for v in load_start],
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "backend": keras.backend.backend(),
    }


def write_report(report: dict, *paths, default=None) -> dict:
    """Print ``report`` as indented JSON (last on stdout) and write it to each of ``paths``
    (``None`` entries skipped, parent folders created); returns ``report``."""
    text = json.dumps(report, indent=2, default=default)
    for path in paths:
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text + "\n")
    print(text)
    return report
