"""Pruning and export of training runs: what ``python -m ssd_keras prune`` / ``export`` run.

Both work on run folders (``config.json`` + ``model.keras``) through the public API of
`model_optimization`:

- `prune_run`: magnitude pruning (`prune_low_magnitude` + `UpdatePruningStep` +
  `strip_pruning`) or filter pruning (`prune_filters`), optionally fine-tuned with
  `ssd_keras.train.train` (``model=`` the pruned model), into a new run folder whose
  ``config.json`` records the pruning (``RunConfig.pruning``) and whose ``.keras`` files hold the
  (possibly narrower) architecture, plus ``pruning_report.json``.
- `export_run`: `model_optimization.export` of the run's training-mode graph (raw predictions,
  decoded in numpy by the runner or `ssd_keras.predict.Predictor`) with ``config.json`` copied
  beside the exported file, so ``predict``/``evaluate`` find the classes and anchors.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np

METHODS = ("magnitude", "filters")
SCHEDULES = ("polynomial", "constant")
REPORT_FILE = "pruning_report.json"
MAP_LOSS_WARNING = 0.03  # mAP lost by pruning above which the report warns


def magnitude_schedule(sparsity: float, total_steps: int, kind: str = "polynomial"):
    """The pruning schedule of a fine-tuning run of ``total_steps`` batches.

    ``'polynomial'``: `PolynomialDecay` from 0 to ``sparsity`` over the first two thirds of
    the steps (about 10 mask updates; the final sparsity is reached at the last update, so the
    last third fine-tunes with fixed masks). ``'constant'`` (or fewer than 3 steps):
    `ConstantSparsity` at ``sparsity`` from step 0 on.
    """
    from model_optimization import ConstantSparsity, PolynomialDecay

    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {kind!r}")
    if kind == "constant" or total_steps < 3:
        return ConstantSparsity(sparsity, begin_step=0, frequency=max(1, total_steps))
    end = max(1, (2 * (total_steps - 1)) // 3)
    frequency = max(1, end // 10)
    end = frequency * (end // frequency)  # the final sparsity is applied only on an update step
    return PolynomialDecay(0.0, sparsity, begin_step=0, end_step=end, frequency=frequency)


def _kernel_sparsity(rows) -> float:
    size = sum(r["size"] for r in rows)
    return sum(r["zeros"] for r in rows) / size if size else 0.0


def _json_rows(rows) -> list[dict]:
    return [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()} for r in rows]


def prune_run(
    run,
    out_dir,
    method: str,
    amount: float,
    criterion: str | None = None,
    schedule: str = "polynomial",
    fine_tune_epochs: int = 0,
    train_data=None,
    val_data=None,
    train_args: dict | None = None,
    training_kwargs: dict | None = None,
    eval_data=None,
    verbose: bool = False,
) -> dict:
    """Prunes the model of a run into a new run folder.

    Args:
        run: the source run folder or ``.keras`` file (with ``config.json`` beside it).
        out_dir: the new run folder (written: ``config.json``, ``model.keras``,
            ``pruning_report.json``; with fine-tuning also the files of `ssd_keras.train.train`).
        method: ``'magnitude'`` (zero the smallest weights of every Conv2D, same architecture)
            or ``'filters'`` (remove whole output channels of the prunable convolutions: a
            narrower model; the SSD heads keep their width).
        amount: the sparsity (magnitude) or the fraction of filters removed per layer, in
            (0, 1).
        criterion: filters only: ``'l1'``, ``'l2'``, ``'bn_gamma'`` or ``'contribution'``
            (default: ``'contribution'`` when the model has BatchNormalization layers, as SSD7,
            else ``'l1'``; ``'bn_gamma'`` was the default, but a lightly trained SSD7's gammas
            all stay near 1, so it ranked filters almost at random: see README).
        schedule: magnitude with fine-tuning: see `magnitude_schedule`.
        fine_tune_epochs: epochs of training after pruning (0: none).
        train_data, val_data: `DataGenerator`s for the fine-tuning.
        train_args: the record written to ``train_args.json`` (resume with the CLI).
        training_kwargs: more keyword arguments of `ssd_keras.train.train` (batch size,
            steps per epoch, optimizer, learning rate, ...).
        eval_data: a `DataGenerator` (e.g. the source run's validation split) on which the
            source and the pruned model are evaluated: ``map_before`` / ``map_after``
            (11-point VOC mAP) in the report, and `format_pruning_report` warns when the
            pruned model lost more than `MAP_LOSS_WARNING`.
        verbose: print the pruning (`format_pruning_report`) before a fine-tuning starts.

    Returns:
        The report (also written to ``pruning_report.json``): ``method``, ``amount``,
        ``criterion``/``schedule``, ``source``, ``params_before``, ``params_after``,
        ``sparsity`` (magnitude: zeros in the pruned kernels; filters: the fraction of filters
        removed from the pruned layers, ``filters_removed_overall`` over all convolutions),
        ``layers`` (per-layer rows), ``fine_tune_epochs``, ``final_loss``, ``seconds``.
    """
    from ssd_keras.predict import load_run

    amount, fine_tune_epochs = _check_prune_arguments(method, amount, fine_tune_epochs, train_data)
    training_kwargs = dict(training_kwargs or {})
    start = time.perf_counter()
    out_dir = Path(out_dir)
    model, config = load_run(run)
    record = {"method": method, "amount": amount, "source": str(Path(run).resolve())}
    if config.pruning:
        record["previous"] = config.pruning
    if method == "filters":
        pruned, layer_rows = _prune_filters(model, amount, criterion, record)
    else:
        layer_rows = None
        pruned = _prune_magnitude(
            model, amount, schedule, fine_tune_epochs, train_data, training_kwargs, record
        )
    record["params_before"] = int(model.count_params())
    # A magnitude-pruned model keeps its shapes (the wrappers' masks are not parameters of
    # the stripped result); filter pruning makes it smaller.
    record["params_after"] = int(
        pruned.count_params() if method == "filters" else record["params_before"]
    )
    new_config = dataclasses.replace(config, pruning=record)

    if fine_tune_epochs and verbose:
        # What was pruned, before the (long) fine-tuning starts.
        plan = {**record, "fine_tune_epochs": 0, "final_loss": None}
        plan["layers"] = layer_rows if method == "filters" else None
        print(format_pruning_report(plan))
        print(f"fine-tuning {fine_tune_epochs} epoch(s) into {out_dir}")
    final, final_loss = _write_pruned_run(
        pruned,
        new_config,
        out_dir,
        fine_tune_epochs,
        train_data,
        val_data,
        train_args,
        training_kwargs,
    )

    report = dict(record)
    report["fine_tune_epochs"] = fine_tune_epochs
    report["final_loss"] = final_loss
    if method == "magnitude":
        report.update(_magnitude_sparsity(final, out_dir))
    else:
        report.update(_filter_sparsity(layer_rows))
    if eval_data is not None:
        from ssd_keras.evaluate import evaluate, summary

        for key, evaluated in (("map_before", model), ("map_after", final)):
            result = evaluate(evaluated, config, eval_data, verbose=False)
            report[key] = float(summary(result)["mAP_11point"])
    report["seconds"] = time.perf_counter() - start
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _write_pruned_run(
    pruned,
    config,
    out_dir: Path,
    fine_tune_epochs,
    train_data,
    val_data,
    train_args,
    training_kwargs,
):
    """Fine-tunes ``pruned`` into the run folder ``out_dir`` (`ssd_keras.train.train`), or
    saves it there as it is; returns the final model and the last training loss (or None)."""
    if not fine_tune_epochs:
        out_dir.mkdir(parents=True, exist_ok=True)
        config.save(out_dir)
        pruned.save(out_dir / "model.keras")
        return pruned, None
    import keras

    from ssd_keras.train import train

    result = train(
        config,
        train_data,
        out_dir,
        epochs=fine_tune_epochs,
        val_data=val_data,
        model=pruned,
        train_args=train_args,
        **training_kwargs,
    )
    final = keras.models.load_model(out_dir / "model.keras", compile=False)
    return final, float(result.history["loss"][-1])


def _check_prune_arguments(method, amount, fine_tune_epochs, train_data) -> tuple[float, int]:
    """``amount`` and ``fine_tune_epochs`` as numbers; raises ``ValueError`` on a bad one."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    amount = float(amount)
    if not 0 < amount < 1:
        raise ValueError(f"amount must be in (0, 1), got {amount!r}")
    fine_tune_epochs = int(fine_tune_epochs)
    if fine_tune_epochs < 0:
        raise ValueError(f"fine_tune_epochs must be >= 0, got {fine_tune_epochs!r}")
    if fine_tune_epochs and train_data is None:
        raise ValueError("fine-tuning (fine_tune_epochs > 0) needs train_data")
    return amount, fine_tune_epochs


def _prune_filters(model, amount: float, criterion: str | None, record: dict):
    """The filter-pruned model and its per-layer rows; records the criterion in ``record``."""
    from model_optimization import filter_pruning_report, prune_filters

    if criterion is None:
        has_bn = any(type(layer).__name__ == "BatchNormalization" for layer in model.layers)
        criterion = "contribution" if has_bn else "l1"
    pruned = prune_filters(model, amount, criterion=criterion)
    record["criterion"] = criterion
    return pruned, filter_pruning_report(model, pruned)


def _prune_magnitude(
    model, amount, schedule, fine_tune_epochs, train_data, training_kwargs, record: dict
):
    """With fine-tuning: the model wrapped for gradual pruning (its schedule recorded in
    ``record``); without: pruned once to ``amount`` and stripped."""
    from model_optimization import ConstantSparsity, prune_low_magnitude, strip_pruning
    from model_optimization.pruning import pruning_wrappers

    if fine_tune_epochs:
        batch_size = int(training_kwargs.get("batch_size") or 16)
        steps = training_kwargs.get("steps_per_epoch") or math.ceil(
            train_data.get_dataset_size() / batch_size
        )
        pruning_schedule = magnitude_schedule(amount, fine_tune_epochs * int(steps), schedule)
        record["schedule"] = pruning_schedule.get_config() | {
            "class": type(pruning_schedule).__name__
        }
        return prune_low_magnitude(model, pruning_schedule)
    wrapped = prune_low_magnitude(model, ConstantSparsity(amount, begin_step=0))
    for wrapper in pruning_wrappers(wrapped):
        wrapper.update_masks(amount)  # one shot, no training
    return strip_pruning(wrapped)


def _magnitude_sparsity(final, out_dir: Path) -> dict:
    """The report's ``sparsity`` and ``layers`` of a magnitude-pruned model; removes a
    ``model_best.keras`` less sparse than the final model (``removed_model_best``)."""
    import keras

    from model_optimization import sparsity_report

    rows = sparsity_report(final)
    entries = {"sparsity": _kernel_sparsity(rows), "layers": _json_rows(rows)}
    best = out_dir / "model_best.keras"
    if best.exists():
        # The best epoch by loss may predate the final sparsity of a gradual schedule;
        # predict/evaluate prefer model_best.keras, so it must be as sparse as asked.
        best_sparsity = _kernel_sparsity(
            sparsity_report(keras.models.load_model(best, compile=False))
        )
        if best_sparsity < entries["sparsity"] - 0.005:
            best.unlink()
            entries["removed_model_best"] = (
                f"its sparsity {best_sparsity:.3f} was below the final {entries['sparsity']:.3f}"
            )
    return entries


def _filter_sparsity(layer_rows) -> dict:
    """The report's ``sparsity``, ``filters_removed_overall`` and ``layers`` of a filter
    pruning."""
    # Over the layers that were pruned (the heads keep their width), and over all of them.
    cut = [r for r in layer_rows[:-1] if r["filters_after"] < r["filters_before"]]
    before = sum(r["filters_before"] for r in cut)
    total = layer_rows[-1]
    return {
        "sparsity": 1 - sum(r["filters_after"] for r in cut) / before if before else 0.0,
        "filters_removed_overall": 1 - total["filters_after"] / total["filters_before"],
        "layers": layer_rows,
    }


def format_pruning_report(report: dict) -> str:
    """The report of `prune_run` as a text table."""
    lines = [
        f"{report['method']} pruning of {report['source']}: amount {report['amount']:.2f}, "
        f"parameters {report['params_before']:,} -> {report['params_after']:,}"
    ]
    if report.get("layers") is None:
        pass  # a fine-tuned filter pruning's table was printed before the fine-tuning
    elif report["method"] == "magnitude":
        from model_optimization import format_sparsity_report

        lines.append(format_sparsity_report(report["layers"]))
    else:
        lines.append(
            f"{'layer':<24} {'filters':>15} {'parameters':>21}   (criterion {report['criterion']})"
        )
        for row in report["layers"]:
            filters = f"{row['filters_before']} -> {row['filters_after']}"
            params = f"{row['params_before']} -> {row['params_after']}"
            lines.append(f"{row['layer']:<24} {filters:>15} {params:>21}")
    if report["fine_tune_epochs"]:
        lines.append(
            f"fine-tuned {report['fine_tune_epochs']} epoch(s), "
            f"final loss {report['final_loss']:.4f}"
        )
    if report.get("map_before") is not None:
        before, after = report["map_before"], report["map_after"]
        lines.append(f"mAP (11-point) on the validation data: {before:.4f} -> {after:.4f}")
        if before - after > MAP_LOSS_WARNING:
            lines.append(
                f"WARNING: the pruned model lost {100 * (before - after):.1f} mAP points; "
                + (
                    "fine-tune longer (--fine-tune-epochs N)"
                    if report["fine_tune_epochs"]
                    else "fine-tune it (--fine-tune-epochs N)"
                )
                + " or prune less (--amount)"
            )
    return "\n".join(lines)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def calibration_images(dataset, config, batch_size: int = 8, seed: int = 0):
    """Resized images of a `DataGenerator` (no labels needed), batch by batch, in the model's
    input range (raw pixels: the SSD models normalise inside), for int8 calibration."""
    from ssd_keras.data import evaluation_resize

    batches = dataset.to_py_dataset(
        batch_size=batch_size,
        shuffle=True,
        transformations=evaluation_resize(config),
        returns=("processed_images",),
        seed=seed,
    )
    for index in range(len(batches)):
        batch = batches[index]
        yield np.asarray(batch[0] if isinstance(batch, (tuple, list)) else batch)


def export_run(
    run,
    out,
    format: str,
    quantization: str | None = None,
    calibration_data=None,
    num_calibration_samples: int = 100,
    io_dtype: str = "float32",
    overwrite: bool = False,
    n_check: int = 2,
) -> dict:
    """Exports a run's model with `model_optimization.export` and copies its ``config.json``.

    The training-mode graph is exported (raw ``(batch, n_anchors, n_classes + 1 + 12)``
    predictions; one graph for every format keeps ``predict``/``evaluate`` identical across
    them): decode with the runner's ``predict_decoded`` or `ssd_keras.predict.Predictor`. (To
    export an inference-mode model with its decode layer, call `model_optimization.export`.)

    Args:
        run: run folder or ``.keras`` file.
        out: ``.tflite`` / ``.onnx`` / ``.xml`` (OpenVINO) file, or the SavedModel folder.
        format: ``'saved_model'``, ``'tflite'``, ``'onnx'`` or ``'openvino'``.
        quantization: None; TFLite: ``'float16'``, ``'dynamic'`` or ``'int8'``; OpenVINO:
            ``'bf16'`` or ``'int8'``.
        calibration_data: a `DataGenerator` whose images calibrate ``'int8'``.
        num_calibration_samples: calibration images.
        io_dtype: ``'int8'`` only: ``'float32'``, ``'uint8'`` or ``'int8'``.
        overwrite: replace an existing export and a different ``config.json`` beside it.
        n_check: images (calibration images, else seeded random pixels) on which the exported
            model is compared with the Keras model.

    Returns:
        ``{"path", "format", "quantization", "config", "size_bytes", "max_abs_diff",
        "n_check"}``.

    Raises:
        FileExistsError: ``out`` exists, or another run's ``config.json`` is in the way,
            without ``overwrite``.
    """
    from model_optimization import export, load_runner
    from ssd_keras.config import CONFIG_FILE
    from ssd_keras.precision import float32_model
    from ssd_keras.predict import load_run

    out = Path(out)
    model, config = load_run(run)
    model = float32_model(model)  # a --mixed-precision run: exporters have no bfloat16 kernels
    config_dir = out if format == "saved_model" else out.parent
    config_path = config_dir / CONFIG_FILE
    _clear_export_target(out, config_path, config, format, overwrite)
    representative = None
    if calibration_data is not None:
        representative = calibration_images(calibration_data, config)
    if quantization == "int8" and representative is None:
        raise ValueError("quantization 'int8' needs calibration_data (a DataGenerator)")
    export(
        model,
        out,
        format=format,
        quantization=quantization,
        representative_data=representative,
        num_calibration_samples=num_calibration_samples,
        io_dtype=io_dtype,
    )
    config.save(config_dir)

    if calibration_data is not None:
        check = next(calibration_images(calibration_data, config, n_check)).astype(np.float32)
    else:
        rng = np.random.default_rng(0)
        shape = (n_check, config.img_height, config.img_width, 3)
        check = rng.integers(0, 256, shape).astype(np.float32)
    runner = load_runner(out)
    expected = np.asarray(model.predict_on_batch(check))
    got = np.asarray(runner(check))
    return {
        "path": str(out),
        "format": format,
        "quantization": quantization,
        "config": str(config_path),
        "size_bytes": _size(out),
        "max_abs_diff": float(np.max(np.abs(got - expected))),
        "n_check": int(check.shape[0]),
    }


def _clear_export_target(out: Path, config_path: Path, config, format: str, overwrite: bool):
    """Refuses to replace an export, or another run's ``config.json``, without ``overwrite``;
    removes an old SavedModel folder at ``out``."""
    from ssd_keras.config import RunConfig

    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite (--overwrite) to replace it")
    if config_path.is_file() and format != "saved_model":
        try:
            existing = RunConfig.load(config_path).to_json()
        except ValueError:
            existing = None
        if existing != config.to_json() and not overwrite:
            raise FileExistsError(
                f"{config_path} holds another run's configuration; export into another folder "
                "(predict/evaluate read the config.json beside the model) or pass overwrite "
                "(--overwrite)"
            )
    if out.is_dir():
        if not (out / "saved_model.pb").is_file():
            raise FileExistsError(f"{out} is a folder but not a SavedModel; not replacing it")
        shutil.rmtree(out)
