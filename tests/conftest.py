"""Shared pytest fixtures: where ../shared/data and ../shared/golden are, skipping when absent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SSD_KERAS_SHARED", PROJECT_ROOT.parent / "shared"))


def _existing_dir(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"{path} is not available on this machine")
    return path


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data`` (real Pascal VOC datasets); the test is skipped where it is absent."""
    return _existing_dir(SHARED / "data")


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """``../shared/golden`` (outputs of the original ssd_keras); skipped where absent."""
    return _existing_dir(SHARED / "golden")


class Golden:
    """One golden fixture: ``npz`` arrays and ``meta`` from the json next to them."""

    def __init__(self, directory: Path, name: str):
        npz_path, json_path = directory / f"{name}.npz", directory / f"{name}.json"
        if not json_path.exists():
            pytest.skip(f"golden fixture {json_path} is not available")
        self.meta = json.loads(json_path.read_text())
        self.npz = np.load(npz_path) if npz_path.exists() else None


@pytest.fixture(scope="session")
def golden(golden_dir):
    """A loader: ``golden("anchors")`` gives that fixture's arrays and metadata."""
    cache: dict[str, Golden] = {}

    def load(name: str) -> Golden:
        if name not in cache:
            cache[name] = Golden(golden_dir, name)
        return cache[name]

    return load
