"""The README's Python snippets: every one compiles, and those that need nothing the user has to
download (weights, VOC2007, their own model and data) run as written, each on its own."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
# Snippets that stand for the user's own files or objects, by a name they use; each is compiled.
NEEDS_USER_FILES = (
    "VGG_ILSVRC_16_layers_fc_reduced.h5",  # the pretrained VGG-16 base
    "resume_from_h5",  # a notebook checkpoint
    "VOC2007/",  # the Pascal VOC 2007 download
    "val_dataset",  # a trained model and its validation data
    "VGG_coco_SSD_300x300_iter_400000.h5",  # the original's COCO weights
    "train_set",  # a model and training data
    "vgg16.weights.h5",  # a VGG16 weights file (and ImageNet weights, which need internet)
)


def _snippets() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return [textwrap.dedent(block) for block in blocks]


def test_every_snippet_compiles():
    snippets = _snippets()
    assert len(snippets) >= 5
    for snippet in snippets:
        compile(snippet, str(README), "exec")


def test_self_contained_snippets_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    ran = 0
    for snippet in _snippets():
        if any(name in snippet for name in NEEDS_USER_FILES):
            continue
        own: dict = {}  # a fresh namespace: a snippet must import and define what it uses
        exec(compile(snippet, str(README), "exec"), own)  # noqa: S102
        namespace.update(own)
        ran += 1
    assert ran >= 3
    # The results the snippets' comments state.
    np = pytest.importorskip("numpy")
    assert namespace["anchors"].shape == (8732, 4)
    assert [layer.n_boxes for layer in namespace["layers"]] == [4, 6, 6, 6, 4, 4]
    assert namespace["y_true"].shape == (1, 8732, 20 + 1 + 12)
    np.testing.assert_allclose(namespace["detections"][0], [[15, 1, 40, 60, 210, 280]], atol=1e-4)
