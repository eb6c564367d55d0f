"""The root notebooks run end to end in small-run mode (``SSD_KERAS_SMALL_RUN=1``), with nbclient.

Each notebook listed in `NOTEBOOKS` is executed top to bottom in a fresh kernel of this test's
Python, from the repository root, with its files written under a temporary folder
(``SSD_KERAS_TUTORIAL_DIR``). A cell that raises fails the test; so does a missing expected line
of output. Skipped when nbclient/nbformat/ipykernel are not installed, or when the
``../shared/data`` folders a notebook needs are absent.

To add a notebook: give its file name, the ``../shared/data`` folders it reads, and a few
strings its outputs must contain.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SSD_KERAS_SHARED", PROJECT_ROOT.parent / "shared"))

NOTEBOOKS = {
    "weight_sampling_tutorial.ipynb": {
        "data": ["bccd/BCCD"],
        "expect": [
            "small run: True",
            "classes4: largest |new - old| logit difference 0.00e+00",
            "boxes, anchors and variances unchanged: True",
            "sampled classifiers",
        ],
    },
    "ssdlite_training.ipynb": {
        "data": [],
        "expect": [
            "small run: True",
            "SSDLite (mobilenet_v2, alpha 0.35):",
            "(height, width): [[6, 8], [3, 4], [2, 2], [1, 1], [1, 1], [1, 1]]",
            "SSDLite validation mAP:",
            "also found by int8:",
            "TFLite int8: model-only FPS",
        ],
    },
    "ssd7_training.ipynb": {
        "data": [],
        "expect": [
            "small run: True",
            "predictor feature maps (height, width): [[30, 40], [15, 20], [7, 10], [3, 5]]",
            "ssd7_shapes.keras",
            "SSD7 validation mAP:",
        ],
    },
    "ssd300_training.ipynb": {
        "data": [],
        "expect": [
            "small run: True",
            "24,280,556 parameters; 8732 anchors; output (None, 8732, 18)",
            "ssd300_shapes.keras",
            "detections per image:",
        ],
    },
    "ssd300_inference.ipynb": {
        "data": [],
        "expect": [
            "small run: True",
            "input (None, 300, 300, 3), output (None, 200, 6)",
            "detections per image in original coordinates:",
        ],
    },
    "ssd512_inference.ipynb": {
        "data": [],
        "expect": [
            "small run: True",
            "input (None, 512, 512, 3), output (None, 200, 6)",
            "detections per image in original coordinates:",
        ],
    },
    "ssd300_evaluation.ipynb": {
        "data": ["voc2012_sample"],
        "expect": [
            "small run: True",
            "mAP (11-point)",
            # the stored detections of a real detector on the 100 VOC images: fixed numbers
            "stored detections on the VOC 2012 sample: mAP 0.608 (11-point), 0.614 (all-point)",
        ],
    },
    "ssd300_evaluation_COCO.ipynb": {
        "data": ["voc2012_sample"],
        "expect": [
            "small run: True",
            "100 images, 273 boxes",
            # pycocotools on the stored detections of a real detector: fixed numbers
            "  AP          0.347\n  AP50        0.610",
            "detections written to",
        ],
    },
}


def _kernel_spec(directory: Path) -> str:
    """A kernelspec that starts this interpreter (the project venv), found through JUPYTER_PATH."""
    name = "ssd-keras-tests"
    spec_dir = directory / "kernels" / name
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ssd-keras tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return name


def _text_outputs(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif "data" in output and "text/plain" in output["data"]:
                parts.append(output["data"]["text/plain"])
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs_in_small_run_mode(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    spec = NOTEBOOKS[name]
    for folder in spec["data"]:
        if not (SHARED / "data" / folder).is_dir():
            pytest.skip(f"{SHARED / 'data' / folder} is not available on this machine")
    path = PROJECT_ROOT / name
    assert path.is_file(), f"{name} is listed in NOTEBOOKS but not at the repository root"

    monkeypatch.setenv("SSD_KERAS_SMALL_RUN", "1")
    monkeypatch.setenv("SSD_KERAS_SHARED", str(SHARED))
    monkeypatch.setenv("SSD_KERAS_TUTORIAL_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    kernel = _kernel_spec(tmp_path / "jupyter")

    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name=kernel,
        resources={"metadata": {"path": str(PROJECT_ROOT)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, if a cell fails

    text = _text_outputs(notebook)
    for expected in spec["expect"]:
        assert expected in text, f"{name}: no output line with {expected!r}"
