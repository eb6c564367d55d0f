"""Shared pytest fixtures: where ../shared/data and ../shared/golden are (skipping when absent),
the `.keras` save/reload check, and a fresh Python interpreter for import checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def keras_round_trip(model, inputs, path: Path, *, expected=None, atol: float = 0.0):
    """Saves ``model`` as ``path`` (`.keras`), reloads it with ``keras.models.load_model`` and no
    ``custom_objects``, and checks that the reloaded model's outputs on ``inputs`` equal
    ``expected`` (default: ``model.predict(inputs)``) within ``atol`` (default: exactly).
    Returns the reloaded model for the test's own further checks."""
    import keras  # here, not at the top: the numpy-only tests must not pay for Keras

    if expected is None:
        expected = model.predict(inputs, verbose=0)
    model.save(path)
    try:
        reloaded = keras.models.load_model(path)
    except Exception as error:
        raise AssertionError(
            f"keras.models.load_model({path.name!r}) without custom_objects failed: {error!r}"
        ) from error
    want = [keras.ops.convert_to_numpy(x) for x in keras.tree.flatten(expected)]
    got = [
        keras.ops.convert_to_numpy(x)
        for x in keras.tree.flatten(reloaded.predict(inputs, verbose=0))
    ]
    assert len(got) == len(want), (
        f"{path.name}: reloaded model has {len(got)} outputs, not {len(want)}"
    )
    for i, (after, before) in enumerate(zip(got, want)):
        where = f"{path.name}: output {i} of the reloaded model"
        assert after.shape == before.shape, f"{where} has shape {after.shape}, not {before.shape}"
        after, before = after.astype("float64"), before.astype("float64")
        if not np.all(np.isclose(after, before, rtol=0.0, atol=atol, equal_nan=True)):
            difference = np.nanmax(np.abs(after - before), initial=0.0)
            raise AssertionError(
                f"{where} differs from the saved model's by up to {difference:.3g} (allowed: "
                f"{atol}), or in where it is NaN"
            )
    return reloaded


@pytest.fixture
def keras_reload(tmp_path):
    """`keras_round_trip` into the test's ``tmp_path``: ``keras_reload(model, x, "name")``."""

    def run(model, inputs, name: str = "model", **kwargs):
        return keras_round_trip(model, inputs, tmp_path / f"{name}.keras", **kwargs)

    return run


def run_python(*args: str, env: dict | None = None, timeout: float = 300):
    """Runs ``python *args`` in a fresh interpreter at the project root (``env`` added to the
    current environment; a variable given as None is removed) and returns the finished process,
    with text stdout and stderr. A non-zero exit fails the test, showing the end of stderr."""
    environment = {**os.environ, **(env or {})}
    done = subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env={name: value for name, value in environment.items() if value is not None},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        shown = " ".join(args)
        shown = shown if len(shown) <= 300 else shown[:300] + " ..."
        pytest.fail(f"`python {shown}` exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return done


# What the numpy packages (and the other Keras-free modules) must not pull in when imported.
DEEP_LEARNING_MODULES = ("keras", "tensorflow", "jax", "torch")


def assert_imports_leave_out(modules, absent=DEEP_LEARNING_MODULES) -> None:
    """Imports ``modules`` in a fresh interpreter and fails if that imported any of ``absent``."""
    code = (
        "import json, sys\n"
        + "".join(f"import {module}\n" for module in modules)
        + f"print(json.dumps([m for m in {tuple(absent)!r} if m in sys.modules]))\n"
    )
    loaded = json.loads(run_python("-c", code).stdout.strip().splitlines()[-1])
    assert not loaded, f"importing {', '.join(modules)} also imported {', '.join(loaded)}"


# Test modules cannot import this conftest under --import-mode=importlib: the helpers come as
# fixtures.
@pytest.fixture(scope="session")
def fresh_python():
    """`run_python`: ``fresh_python("-c", code, env={...})`` -> the finished process."""
    return run_python


@pytest.fixture(scope="session")
def imports_leave_out():
    """`assert_imports_leave_out`: ``imports_leave_out(["eval_utils"], absent=(...))``."""
    return assert_imports_leave_out
