"""Which runtime runs a model: ``--runtime`` of predict/evaluate and ``export --format best``.

``export --format best`` (`export_best`) exports a run to every runtime and precision whose
package is installed (LiteRT float32/float16/dynamic/int8, ONNX Runtime, OpenVINO
float32/bf16/int8), runs each on the user's images, keeps those whose detections agree with the
Keras model (`detections_agree`) and records them with their latencies in
``<run>/runtime.json`` (`CHOICE_FILE`); the fastest agreeing one is ``chosen``.

``--runtime`` (`resolve_runtime`): ``keras`` runs the Keras model; ``litert``, ``onnxruntime``,
``openvino`` run the fastest verified export of that runtime listed in the run's record;
``auto`` runs the record's choice when the record belongs to the run's current model file
(same SHA-256), else the Keras model. An exported file given as ``--run`` is run by its own
runtime (``auto`` or the matching name).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from bounding_box_utils.bounding_box_utils import iou

RUNTIMES = ("auto", "keras", "litert", "onnxruntime", "openvino")
CHOICE_FILE = "runtime.json"
RUNTIME_OF_SUFFIX = {".tflite": "litert", ".onnx": "onnxruntime", ".xml": "openvino"}
# (runtime, precision, export format, export quantization, file name, modules it needs)
CANDIDATES = (
    ("litert", "fp32", "tflite", None, "model_fp32.tflite", ("ai_edge_litert",)),
    ("litert", "float16", "tflite", "float16", "model_fp16.tflite", ("ai_edge_litert",)),
    ("litert", "dynamic", "tflite", "dynamic", "model_dynamic.tflite", ("ai_edge_litert",)),
    ("litert", "int8", "tflite", "int8", "model_int8.tflite", ("ai_edge_litert",)),
    ("onnxruntime", "fp32", "onnx", None, "model.onnx", ("tf2onnx", "onnxruntime")),
    ("openvino", "fp32", "openvino", None, "model_fp32.xml", ("openvino",)),
    ("openvino", "bf16", "openvino", "bf16", "model_bf16.xml", ("openvino",)),
    ("openvino", "int8", "openvino", "int8", "model_int8.xml", ("openvino", "nncf")),
)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` `(N, 4)` with every box in ``b`` `(M, 4)`, corners
    ``(xmin, ymin, xmax, ymax)`` in pixels, no +1 (continuous boxes) -> `(N, M)`."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return iou(a, b, coords="corners", mode="outer_product", border_pixels="half")


def detections_agree(
    reference: np.ndarray,
    candidate: np.ndarray,
    min_confidence: float = 0.5,
    min_iou: float = 0.7,
    margin: float = 0.05,
) -> int:
    """Detections of one image that the other model does not reproduce.

    A detection of confidence >= ``min_confidence`` in either list agrees when the other list
    has a detection of the same class with IoU >= ``min_iou`` and confidence >=
    ``min_confidence - margin`` (so a 0.51 against a 0.49 is not a disagreement), or corners
    within half a pixel of its own (zero-area boxes clipped at an image edge). (Kept apart
    from `model_optimization.export`'s ONNX decode check, which compares exact values.)

    Args:
        reference, candidate: `(k, 6)` arrays ``[class_id, confidence, xmin, ymin, xmax, ymax]``
            (decoded down to ``min_confidence - margin`` at least).

    Returns:
        The number of confident detections, in both lists together, without a partner (0: the
        two agree).
    """
    reference = np.asarray(reference, dtype=np.float64).reshape(-1, 6)
    candidate = np.asarray(candidate, dtype=np.float64).reshape(-1, 6)
    unmatched = 0
    for mine, other in ((reference, candidate), (candidate, reference)):
        confident = mine[mine[:, 1] >= min_confidence]
        partners = other[other[:, 1] >= min_confidence - margin]
        if len(confident) == 0:
            continue
        if len(partners) == 0:
            unmatched += len(confident)
            continue
        iou = box_iou(confident[:, 2:], partners[:, 2:])  # (n_confident, n_partners)
        # Boxes clipped to an image edge can have zero area (IoU 0 even with themselves):
        # corners within half a pixel count as the same box.
        close = np.abs(confident[:, None, 2:] - partners[None, :, 2:]).max(axis=-1) <= 0.5
        same = confident[:, :1] == partners[None, :, 0]
        unmatched += int((~(((iou >= min_iou) | close) & same).any(axis=1)).sum())
    return unmatched


def allowed_unmatched(n_confident: int, max_unmatched: float) -> int:
    """How many unmatched detections (`detections_agree`'s count) an export may have and still
    agree: ``max_unmatched`` (a fraction) of the Keras model's ``n_confident`` detections,
    rounded down (0 for a fraction of 0)."""
    if not 0 <= max_unmatched < 1:
        raise ValueError(f"max_unmatched must be in [0, 1), got {max_unmatched!r}")
    return int(np.floor(max_unmatched * n_confident + 1e-9))


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _run_model_file(folder: Path) -> Path | None:
    for name in ("model_best.keras", "model.keras"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_choice(run) -> dict | None:
    """The ``runtime.json`` record of a run folder (or of a ``.keras`` file's folder) when it
    belongs to the run's current model file (same SHA-256), else None."""
    run = Path(run)
    folder = run if run.is_dir() else run.parent
    model_file = run if run.suffix == ".keras" else _run_model_file(folder)
    record_file = folder / CHOICE_FILE
    if model_file is None or not record_file.is_file():
        return None
    try:
        record = json.loads(record_file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{record_file}: not valid JSON ({error})") from None
    if record.get("model_file") != model_file.name:
        return None
    if record.get("model_sha256") != file_sha256(model_file):
        return None  # retrained or replaced since the exports were checked
    return record


def resolve_runtime(run, runtime: str = "auto") -> Path:
    """The model file ``--run RUN --runtime RUNTIME`` runs (see the module docstring).

    Raises:
        ValueError: an unknown runtime, an exported file of another runtime, or no verified
            export of the asked runtime beside the run.
    """
    from ssd_keras.predict import is_exported

    if runtime not in RUNTIMES:
        raise ValueError(f"--runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
    run = Path(run)
    if is_exported(run):
        own = RUNTIME_OF_SUFFIX.get(run.suffix, "tensorflow")
        if runtime not in ("auto", own):
            raise ValueError(f"--runtime {runtime}: {run} is a {own} model")
        return run
    if runtime == "keras":
        return run
    record = read_choice(run)
    folder = run if run.is_dir() else run.parent
    if runtime == "auto":
        if record is None or record.get("chosen") is None:
            return run
        chosen = folder / record["chosen"]["path"]
        return chosen if chosen.exists() else run
    verified = [
        c
        for c in (record or {}).get("candidates", [])
        if c["runtime"] == runtime and c.get("agree") and (folder / c["path"]).exists()
    ]
    if not verified:
        raise ValueError(
            f"--runtime {runtime}: no verified {runtime} export of {run}'s current model in "
            f"{folder / CHOICE_FILE}; run 'ssd-keras export --run {run} --format best' first"
        )
    return folder / min(verified, key=lambda c: c["median_ms"])["path"]


def available(modules) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)


def interleaved_times(runners: dict, image: np.ndarray, rounds: int) -> dict[str, list[float]]:
    """Seconds of each runner's calls on ``image`` (batch 1), the runners called in turn."""
    times = {name: [] for name in runners}
    for run in runners.values():  # warm-up
        run(image)
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run(image)
            times[name].append(time.perf_counter() - start)
    return times


def export_best(
    run,
    out_dir=None,
    calibration_data=None,
    check_data=None,
    n_check: int = 16,
    rounds: int = 20,
    num_calibration_samples: int = 100,
    candidates=None,
    max_unmatched: float = 0.0,
    verbose: bool = True,
) -> dict:
    """Exports a run to every available runtime/precision and keeps the fastest that agrees.

    Args:
        run: run folder (or ``.keras`` file with ``config.json`` beside it).
        out_dir: where the exports go (default ``<run folder>/exports``; ``config.json`` is
            copied there). Must be inside the run folder (the record stores relative paths).
        calibration_data: a `DataGenerator` for int8 calibration (int8 is skipped without).
        check_data: a `DataGenerator` whose images check agreement and time the runtimes
            (default ``calibration_data``; random pixels when both are None).
        n_check: images compared with the Keras model.
        rounds: timed calls per runtime (batch 1, interleaved).
        candidates: ``(runtime, precision)`` pairs to try (default: all in `CANDIDATES`
            whose packages are installed).
        max_unmatched: the fraction of the Keras model's confident detections that may go
            without a partner (`detections_agree`, both directions counted) for an export to
            agree (default 0: every one matched). int8 exports rarely reproduce every
            detection at the threshold's edge; 0.01 lets one in a hundred differ.

    Returns:
        The record written to ``<run folder>/runtime.json``: ``model_file``,
        ``model_sha256``, ``chosen`` (``runtime``, ``precision``, ``path``, ``median_ms``, or
        None when no export agrees), ``keras_median_ms``, ``candidates`` (one row each with
        ``agree``, ``unmatched`` detections, ``median_ms``, ``spread_ms``; ``error`` when the
        export failed), ``n_check``, ``rounds``, ``load_average``.
    """
    from ssd_keras.predict import Predictor, load_model

    allowed_unmatched(0, max_unmatched)  # checks it before any export
    run = Path(run)
    folder, model_file, out_dir = _export_folders(run, out_dir)
    model, config = load_model(run)  # what --runtime keras runs
    source = check_data if check_data is not None else calibration_data
    images = _check_images(source, config, n_check)
    margin = 0.05
    reference = Predictor(model, config, confidence_thresh=0.5 - margin)(images)
    n_confident = int(sum((r[:, 1] >= 0.5).sum() for r in reference))
    allowed = allowed_unmatched(n_confident, max_unmatched)

    rows, runners = [], {"keras": model.predict_on_batch}
    wanted = None if candidates is None else {tuple(c) for c in candidates}
    for runtime, precision, fmt, quantization, name, modules in CANDIDATES:
        if wanted is not None and (runtime, precision) not in wanted:
            continue
        if not available(modules):
            continue
        row = {"runtime": runtime, "precision": precision}
        if quantization == "int8" and calibration_data is None:
            rows.append(row | {"error": "no calibration data", "agree": False})
            continue
        path = out_dir / name
        runner = _export_candidate(
            run, path, fmt, quantization, calibration_data, num_calibration_samples, row
        )
        if runner is None:
            rows.append(row)
            continue
        got = Predictor(runner, config, confidence_thresh=0.5 - margin)(images)
        unmatched = sum(detections_agree(r, g, margin=margin) for r, g in zip(reference, got))
        row |= {
            "path": str(path.resolve().relative_to(folder.resolve())),
            "agree": unmatched <= allowed,
            "unmatched": unmatched,
            "detections": n_confident,
        }
        rows.append(row)
        runners[f"{runtime}/{precision}"] = runner
        if verbose:
            print(f"{runtime} {precision}: {unmatched} unmatched detections", flush=True)

    times = _time_candidates(rows, runners, images, rounds)
    agreeing = [r for r in rows if r.get("agree")]
    best = min(agreeing, key=lambda r: r["median_ms"]) if agreeing else None
    keras_ms = round(1000 * statistics.median(times["keras"]), 3)
    record = {
        "model_file": model_file.name,
        "model_sha256": file_sha256(model_file),
        "chosen": None
        if best is None
        else {k: best[k] for k in ("runtime", "precision", "path", "median_ms")},
        "keras_median_ms": keras_ms,
        "candidates": rows,
        "criterion": {
            "min_confidence": 0.5,
            "min_iou": 0.7,
            "margin": margin,
            "max_unmatched": max_unmatched,
            "allowed_unmatched": allowed,
        },
        "n_check": len(images),
        "rounds": rounds,
        "load_average": round(os.getloadavg()[0], 2),
    }
    if best is not None and best["median_ms"] >= keras_ms:
        record["chosen"] = None  # no export beats the Keras model itself
    (folder / CHOICE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _export_folders(run: Path, out_dir) -> tuple[Path, Path, Path]:
    """The run folder, the model file exported and the exports folder (inside the run
    folder: the record stores relative paths)."""
    folder = run if run.is_dir() else run.parent
    model_file = run if run.suffix == ".keras" else _run_model_file(folder)
    if model_file is None:
        raise FileNotFoundError(f"{run}: no model_best.keras or model.keras")
    out_dir = Path(out_dir) if out_dir is not None else folder / "exports"
    try:
        out_dir.resolve().relative_to(folder.resolve())
    except ValueError:
        raise ValueError(f"out_dir {out_dir} must be inside the run folder {folder}") from None
    return folder, model_file, out_dir


def _check_images(source, config, n_check: int) -> list[np.ndarray]:
    """``n_check`` resized uint8 images of the `DataGenerator` ``source`` (seeded random
    pixels when it is None) on which the exports are compared with the Keras model."""
    from ssd_keras.optimize import calibration_images

    if source is not None:
        images = next(calibration_images(source, config, batch_size=n_check, seed=1))
    else:
        shape = (n_check, config.img_height, config.img_width, 3)
        images = np.random.default_rng(0).integers(0, 256, shape).astype(np.float32)
    return [np.asarray(im, dtype=np.uint8) for im in images]


def _export_candidate(
    run, path: Path, fmt, quantization, calibration_data, num_calibration_samples, row: dict
):
    """Exports ``run`` to ``path`` and loads its runner; None (with ``row["error"]`` set) when
    the runtime cannot take this model."""
    from ssd_keras.optimize import export_run
    from ssd_keras.predict import load_model

    try:
        export_run(
            run,
            path,
            format=fmt,
            quantization=quantization,
            calibration_data=calibration_data,
            num_calibration_samples=num_calibration_samples,
            overwrite=True,
        )
        return load_model(path)[0]
    except Exception as error:  # a runtime that cannot take this model is skipped
        row |= {"error": f"{type(error).__name__}: {error}", "agree": False}
        return None


def _time_candidates(rows: list[dict], runners: dict, images, rounds: int) -> dict:
    """Times every runner on the first image (`interleaved_times`) and adds each row's
    ``median_ms`` / ``spread_ms``; returns the times."""
    batch = np.asarray(images[:1], dtype=np.float32)
    times = interleaved_times(runners, batch, rounds)
    for row in rows:
        key = f"{row['runtime']}/{row['precision']}"
        if key in times:
            row["median_ms"] = round(1000 * statistics.median(times[key]), 3)
            row["spread_ms"] = round(1000 * (max(times[key]) - min(times[key])), 3)
    return times
