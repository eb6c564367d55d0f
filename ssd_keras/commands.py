"""What each sub-command of ``ssd-keras`` does: ``cmd_<command>(args) -> exit status``.

``args`` is the `argparse.Namespace` of `ssd_keras.cli.build_parser`. Each command checks its
arguments (files exist, options fit together, what it may do with its output folder) before it
imports TensorFlow, then calls the library: `ssd_keras.train`, `ssd_keras.evaluate`,
`ssd_keras.predict`, `ssd_keras.optimize`, `ssd_keras.runtime`, `ssd_keras.inspection`,
`ssd_keras.demo`. User errors are raised as `CLIError`.
"""

from __future__ import annotations

import json
from pathlib import Path

from ssd_keras.cli_errors import CLIError
from ssd_keras.dataset_args import check_dataset_args, dataset_given, has_val, load_dataset
from ssd_keras.run_folder import (
    check_new_run_folder,
    check_resume,
    check_train_out,
    dataset_from_run,
    fine_tuning_train_args,
    folder_of_run,
    read_train_args,
    resolve_train_args,
    with_recipe,
)

# --------------------------------------------------------------------------- train


def _make_strategy(args):
    if args.distribute == "none":
        if args.cpu_devices:
            raise CLIError("--cpu-devices is only used with --distribute mirrored/data-parallel")
        return None
    import keras

    backend = keras.backend.backend()
    if args.distribute == "data-parallel":
        if backend != "jax":
            raise CLIError(
                f"--distribute data-parallel needs the JAX backend (KERAS_BACKEND=jax); "
                f"KERAS_BACKEND is {backend!r} (use --distribute mirrored with TensorFlow)"
            )
        return _data_parallel(args)
    if backend != "tensorflow":
        raise CLIError(
            f"--distribute mirrored needs the TensorFlow backend (KERAS_BACKEND is {backend!r}; "
            "use --distribute data-parallel with JAX)"
        )
    from ssd_keras.distribute import mirrored_strategy

    return mirrored_strategy(args.cpu_devices)


def _data_parallel(args):
    try:
        from ssd_keras.distribute import data_parallel
    except ImportError:
        raise CLIError(
            "--distribute data-parallel: ssd_keras.distribute.data_parallel is not "
            "available in this installation"
        ) from None
    try:
        distribution = data_parallel(args.cpu_devices)
    except RuntimeError as error:
        raise CLIError(f"--distribute data-parallel: {error}") from None
    n_devices = int(distribution.device_mesh.devices.size)
    if args.batch_size % n_devices:
        raise CLIError(
            f"--batch-size {args.batch_size}: data-parallel training splits every batch "
            f"evenly over the {n_devices} devices; give a multiple of {n_devices}"
        )
    return distribution


def _training_kwargs(args) -> dict:
    """The `train` keyword arguments of the shared training options."""
    return {
        "batch_size": args.batch_size,
        "steps_per_epoch": args.steps_per_epoch,
        "optimizer": args.optimizer,
        "learning_rate": args.lr,
        "lr_schedule": args.lr_schedule,
        "augmentation": args.augmentation,
        "early_stopping_patience": args.early_stopping_patience,
        "seed": args.seed,
        "workers": args.workers,
        "tensorboard": args.tensorboard,
        "verbose": 2 if args.quiet else "auto",
    }


def _print_trained(result, epochs: int) -> None:
    history = result.history
    print(
        f"trained epochs {result.initial_epoch + 1}..{result.initial_epoch + len(history['loss'])}"
        f" of {epochs}; final loss {history['loss'][-1]:.4f}"
    )
    for name, path in result.paths.items():
        print(f"  {name:<11} {path}")


def _check_train_args(args, out: Path) -> tuple[dict, str]:
    """Checks train's arguments and its run folder; returns the train_args.json record and the
    dataset kind."""
    check_train_out(out, args.resume, args.overwrite)
    from ssd_keras.config import check_image_size

    record = resolve_train_args(args, out)
    if args.image_size is not None:
        try:
            check_image_size(args.model, args.image_size)
        except ValueError as error:
            raise CLIError(f"--image-size: {error}") from None
    if args.resume:
        check_resume(out, args.epochs, dataset_given(args))
    kind = check_dataset_args(args, with_val=True, classes_known=args.resume)
    return record, kind


def _new_run_config(args, classes):
    """The `RunConfig` of a new run: --model, --image-size, --variances, --anchors."""
    from ssd_keras.config import RunConfig

    overrides, image_size = {}, args.image_size
    if args.anchors:
        from ssd_keras.inspection import read_anchors

        anchors = read_anchors(args.anchors, model=args.model)
        if image_size is not None and tuple(image_size) != anchors["image_size"]:
            raise CLIError(
                f"--anchors: {args.anchors} was fitted for image size "
                f"{list(anchors['image_size'])}, --image-size is {list(image_size)}"
            )
        overrides, image_size = anchors["overrides"], anchors["image_size"]
    return RunConfig.create(
        args.model, classes, image_size=image_size, variances=args.variances, **overrides
    )


def _train_data_and_config(args, out: Path, kind: str):
    """``(train_data, val_data, config)``: a resumed run's saved config, else a new one."""
    from ssd_keras.config import RunConfig

    saved = RunConfig.load(out) if args.resume else None
    default = None
    if saved is not None and kind == "voc" and not (Path(args.data) / "classes.txt").is_file():
        default = saved.classes  # a resumed run knows its classes
    train_data, classes = load_dataset(args, kind, default_classes=default)
    val_data = None
    if has_val(args, kind):
        val_data = load_dataset(args, kind, "val", default_classes=default)[0]
    if saved is None:
        return train_data, val_data, _new_run_config(args, classes)
    if saved.classes != classes:
        raise CLIError(
            f"--resume: the run in {out} was trained on classes {saved.classes}, the "
            f"dataset gives {classes}"
        )
    return train_data, val_data, saved


def cmd_train(args) -> int:
    out = Path(args.out)
    record, kind = _check_train_args(args, out)
    strategy = _make_strategy(args)  # before anything else initialises TensorFlow

    from ssd_keras.train import train

    train_data, val_data, config = _train_data_and_config(args, out, kind)
    result = train(
        config,
        train_data,
        out,
        epochs=args.epochs,
        val_data=val_data,
        resume=args.resume,
        overwrite=args.overwrite,
        strategy=strategy,
        train_args=with_recipe(record, config.model),
        backbone_weights=args.backbone_weights,
        loss=args.loss,
        focal_gamma=args.focal_gamma,
        focal_alpha=args.focal_alpha,
        mixed_precision=bool(args.mixed_precision),
        **_training_kwargs(args),
    )
    _print_trained(result, args.epochs)
    return 0


# --------------------------------------------------------------------------- inspect, anchors


def _inspection_setup(args):
    """Checks and loads the dataset of inspect/anchors; returns ``(dataset, config)``."""
    kind = check_dataset_args(args)
    from ssd_keras.config import RunConfig

    dataset, classes = load_dataset(args, kind)
    overrides, image_size = {}, args.image_size
    if getattr(args, "anchors", None):
        from ssd_keras.inspection import read_anchors

        anchors = read_anchors(args.anchors, model=args.model)
        overrides, image_size = anchors["overrides"], image_size or anchors["image_size"]
    return dataset, RunConfig.create(args.model, classes, image_size=image_size, **overrides)


def cmd_inspect(args) -> int:
    from ssd_keras.inspection import inspect_dataset, summary_lines

    dataset, config = _inspection_setup(args)
    report = inspect_dataset(dataset, config, args.out, iou_threshold=args.iou)
    print("\n".join(summary_lines(report)))
    print(f"report and plots in {args.out}")
    return 0


def cmd_anchors(args) -> int:
    out = Path(args.out)
    if out.suffix != ".json":
        raise CLIError(f"--out: the anchors file is a .json file, got {out}")
    if out.exists() and not args.overwrite:
        raise CLIError(f"--out: {out} exists; add --overwrite to replace it")
    from ssd_keras.inspection import fit_dataset_anchors, write_anchors

    dataset, config = _inspection_setup(args)
    predictor_sizes = config.predictor_sizes()
    fit, boxes = fit_dataset_anchors(
        dataset, config, args.iou, seed=args.seed, predictor_sizes=predictor_sizes
    )
    record = write_anchors(
        out, config, fit, boxes, data_source=str(args.data or args.csv or args.coco)
    )
    plot, shapes_plot, layers = _plot_anchor_fit(out, config, fit, boxes, predictor_sizes)
    start, fitted = record["coverage_start"], record["coverage_fitted"]
    for name, row in (("default", start), ("fitted", fitted)):
        sizes = ", ".join(
            f"{size} {row['per_size'][size]['fraction_matched'] or 0:.3f}"
            for size in row["per_size"]
        )
        print(
            f"{name:>8}: {row['fraction_matched']:.3f} of boxes matched at IoU "
            f"{row['threshold']} (mean best IoU {row['mean_best_iou']:.3f}; {sizes})"
        )
    if not fit.improved:
        print("no anchors found that cover more boxes; the file holds the defaults")
    print(f"scales {fit.scales}, boxes per location {[layer.n_boxes for layer in layers]}")
    print(f"wrote {out}, {plot} and {shapes_plot}; train with --anchors {out}")
    return 0


def _plot_anchor_fit(out: Path, config, fit, boxes, predictor_sizes):
    """The coverage and box-shape plots beside ``out``; returns their paths and the default
    anchor layers."""
    from ssd_keras.config import RunConfig
    from ssd_keras.inspection import anchor_layers, plot_box_shapes, plot_coverage_by_size

    valid = (boxes.widths > 0) & (boxes.heights > 0)
    plot = out.with_name(out.stem + "_coverage.png")
    plot_coverage_by_size(
        {"default anchors": fit.start_coverage, "fitted anchors": fit.coverage},
        boxes.areas[valid],
        plot,
    )
    layers = anchor_layers(config, predictor_sizes)
    fitted_config = RunConfig.create(
        config.model,
        config.classes,
        image_size=config.image_size,
        scales=fit.scales,
        aspect_ratios_per_layer=fit.aspect_ratios_per_layer,
    )
    shapes_plot = out.with_name(out.stem + "_shapes.png")
    plot_box_shapes(
        boxes,
        layers,
        config,
        shapes_plot,
        fitted_layers=anchor_layers(fitted_config, predictor_sizes),
    )
    return plot, shapes_plot, layers


# --------------------------------------------------------------------------- evaluate, predict


def _load_model(args):
    """The model and `RunConfig` that ``--run``, ``--runtime``, ``--precision`` and
    ``--config`` name (`ssd_keras.runtime.resolve_runtime`, `ssd_keras.predict.load_model`).
    ``--precision bf16`` runs the Keras model of a run (``--runtime auto`` becomes
    ``keras``)."""
    from ssd_keras.predict import is_exported, load_model
    from ssd_keras.runtime import resolve_runtime

    runtime = args.runtime
    if args.precision != "float32":
        if runtime not in ("auto", "keras"):
            raise CLIError(
                f"--precision {args.precision} runs the Keras model, not --runtime {runtime}"
            )
        if not is_exported(Path(args.run)):
            runtime = "keras"  # not the export that auto would pick
    try:
        path = resolve_runtime(args.run, runtime)
    except ValueError as error:
        raise CLIError(str(error)) from None
    return load_model(path, args.config, args.precision)  # refuses a precision for an export


def cmd_evaluate(args) -> int:
    # Without --classes and classes.txt, the model's own class list is used.
    kind = check_dataset_args(args, classes_known=True)
    if not Path(args.run).exists():
        raise CLIError(f"--run: not found: {args.run}")
    from ssd_keras.evaluate import evaluate, summary

    model, config = _load_model(args)
    default = None
    if kind == "voc" and not (Path(args.data) / "classes.txt").is_file():
        default = config.classes
    dataset, classes = load_dataset(args, kind, default_classes=default)
    if classes != config.classes:
        raise CLIError(f"the dataset's classes {classes} differ from the model's {config.classes}")
    result = evaluate(
        model,
        config,
        dataset,
        batch_size=args.batch_size,
        out_dir=args.out,
        verbose=not args.json,
        matching_iou_threshold=args.iou,
    )
    if args.json:
        print(json.dumps(summary(result), indent=2))
    elif args.out:
        print(f"metrics and plots in {args.out}")
    return 0


def _check_predict_args(args) -> None:
    if not Path(args.run).exists():
        raise CLIError(f"--run: not found: {args.run}")
    if args.config is not None and not Path(args.config).exists():
        raise CLIError(f"--config: not found: {args.config}")
    if not args.inputs and not args.video and args.camera is None:
        raise CLIError(
            "nothing to predict on: give image files/folders, --video FILE or --camera N"
        )
    for video in args.video:
        if not Path(video).is_file():
            raise CLIError(f"--video: file not found: {video}")


def cmd_predict(args) -> int:
    _check_predict_args(args)
    from ssd_keras.predict import (
        Predictor,
        collect_inputs,
        predict_images,
        predict_video,
    )

    try:
        images, videos = collect_inputs(args.inputs)
    except (FileNotFoundError, ValueError) as error:
        raise CLIError(str(error)) from None
    videos += [Path(v) for v in args.video]
    model, config = _load_model(args)
    predictor = Predictor(model, config, args.confidence, args.nms_iou)
    out = Path(args.out)
    skipped = {}
    if images:
        skipped = predict_images(predictor, images, out, batch_size=args.batch_size)["skipped"]
    for video in videos:
        target = out / f"{video.stem}_pred{video.suffix}"
        predict_video(predictor, video, target, max_frames=args.max_frames)
    if args.camera is not None:
        target = out / f"camera{args.camera}_pred.mp4"
        predict_video(predictor, args.camera, target, max_frames=args.max_frames)
    if skipped:
        path, reason = next(iter(skipped.items()))
        more = f" and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        raise CLIError(
            f"skipped {path}: {reason}{more}; the other {len(images) - len(skipped)} image(s) "
            f"are done (pictures in {out})"
        )
    return 0


# --------------------------------------------------------------------------- prune, export


def _source_validation_data(run: Path):
    """The source run's VOC validation split (from its train_args.json), or None."""
    saved = read_train_args(folder_of_run(run)) or {}
    if not (saved.get("data") and saved.get("val_split")):
        print("no validation split in the source run's train_args.json: mAP not compared")
        return None
    from ssd_keras import data
    from ssd_keras.config import RunConfig

    classes = RunConfig.load(folder_of_run(run)).classes
    return data.load_voc(saved["data"], saved["val_split"], classes)


def _check_prune_args(args, run: Path, out: Path) -> str | None:
    """Checks prune's arguments and makes way for its run folder; returns the fine-tuning
    dataset kind (None without --fine-tune-epochs)."""
    if not run.exists():
        raise CLIError(f"--run: not found: {run}")
    if out.resolve() == folder_of_run(run).resolve():
        raise CLIError(f"--out: {out} is the source run's folder; choose a new folder")
    kind = None
    if args.fine_tune_epochs > 0:
        dataset_from_run(args, run, "--fine-tune-epochs")
        kind = check_dataset_args(args, with_val=True, classes_known=True)
    elif dataset_given(args):
        raise CLIError("dataset options are only used with --fine-tune-epochs N")
    if args.criterion and args.method != "filters":
        raise CLIError("--criterion is only used with --method filters")
    check_new_run_folder(out, args.overwrite)
    return kind


def _fine_tuning_data(args, run: Path, kind: str) -> dict:
    """The fine-tuning `prune_run` keywords: train_data, val_data, train_args."""
    from ssd_keras.predict import load_run

    config = load_run(run)[1]
    data = {}
    data["train_data"], classes = load_dataset(args, kind, default_classes=config.classes)
    if classes != config.classes:
        raise CLIError(
            f"the fine-tuning dataset's classes {classes} differ from the model's {config.classes}"
        )
    if has_val(args, kind):
        data["val_data"] = load_dataset(args, kind, "val", default_classes=config.classes)[0]
    data["train_args"] = fine_tuning_train_args(args, run, config)
    return data


def cmd_prune(args) -> int:
    run, out = Path(args.run), Path(args.out)
    kind = _check_prune_args(args, run, out)
    fine_tune = kind is not None

    from ssd_keras.optimize import format_pruning_report, prune_run

    # Fine-tuning takes options not given from the source run before they are passed on.
    data = _fine_tuning_data(args, run, kind) if fine_tune else {}
    report = prune_run(
        run,
        out,
        method=args.method,
        amount=args.amount,
        criterion=args.criterion,
        schedule=args.schedule,
        fine_tune_epochs=args.fine_tune_epochs,
        training_kwargs=_training_kwargs(args) if fine_tune else None,
        eval_data=_source_validation_data(run),
        verbose=True,
        **data,
    )
    if fine_tune and args.method == "filters":
        report = {**report, "layers": None}  # the table came before the fine-tuning
    print(format_pruning_report(report))
    print(f"pruned run in {out} (report: {out / 'pruning_report.json'})")
    return 0


def _require_tensorflow() -> None:
    import keras

    if keras.backend.backend() != "tensorflow":
        raise CLIError(
            f"export needs the TensorFlow backend (KERAS_BACKEND=tensorflow), running "
            f"{keras.backend.backend()!r}"
        )


def _check_export_args(args, run: Path, out: Path) -> str | None:
    """Checks export's arguments; returns the calibration dataset kind (None unless int8)."""
    suffix = {"tflite": ".tflite", "onnx": ".onnx", "openvino": ".xml"}.get(args.format)
    if suffix and out.suffix != suffix:
        raise CLIError(f"--out: a {args.format} export is a {suffix} file, got {out}")
    if args.format == "saved_model" and out.suffix in (".tflite", ".onnx", ".xml", ".keras"):
        raise CLIError(f"--out: a saved_model export is a folder, got {out}")
    allowed = {"tflite": ("float16", "dynamic", "int8"), "openvino": ("bf16", "int8")}
    if args.quantization and args.quantization not in allowed.get(args.format, ()):
        formats = " or ".join(f for f, q in allowed.items() if args.quantization in q)
        raise CLIError(f"--quantization {args.quantization} needs --format {formats}")
    if args.io_dtype != "float32" and (args.quantization != "int8" or args.format != "tflite"):
        raise CLIError(f"--io-dtype {args.io_dtype} needs --format tflite --quantization int8")
    if out.exists() and not args.overwrite:
        raise CLIError(f"--out: {out} exists; add --overwrite to replace it")
    if args.quantization == "int8":
        dataset_from_run(args, run, "--quantization int8 (calibration images)")
        return check_dataset_args(args, classes_known=True)
    if dataset_given(args):
        raise CLIError("dataset options are only used with --quantization int8 (calibration)")
    return None


def cmd_export(args) -> int:
    run = Path(args.run)
    if not run.exists():
        raise CLIError(f"--run: not found: {run}")
    if args.format == "best":
        return _export_best(args, run)
    if args.out is None:
        raise CLIError(f"--out is required with --format {args.format}")
    out = Path(args.out)
    kind = _check_export_args(args, run, out)
    _require_tensorflow()
    from ssd_keras.optimize import export_run
    from ssd_keras.predict import load_run

    calibration = None
    if kind is not None:
        config = load_run(run)[1]
        calibration = load_dataset(args, kind, default_classes=config.classes)[0]
    result = export_run(
        run,
        out,
        format=args.format,
        quantization=args.quantization,
        calibration_data=calibration,
        num_calibration_samples=args.num_calibration,
        io_dtype=args.io_dtype,
        overwrite=args.overwrite,
    )
    quantization = f" ({result['quantization']})" if result["quantization"] else ""
    print(
        f"exported {result['format']}{quantization} to {result['path']} "
        f"({result['size_bytes'] / 1e6:.2f} MB); run configuration: {result['config']}; "
        f"max |exported - Keras| on {result['n_check']} test images: {result['max_abs_diff']:.2e}"
    )
    return 0


def _export_best(args, run: Path) -> int:
    if args.quantization or args.io_dtype != "float32":
        raise CLIError("--format best tries every precision itself; drop --quantization/--io-dtype")
    _require_tensorflow()
    # The run's training data (or the dataset given) calibrates int8 and checks agreement.
    dataset_from_run(args, run, "--format best (calibration and check images)")
    kind = check_dataset_args(args, classes_known=True)
    from ssd_keras.predict import load_run
    from ssd_keras.runtime import CHOICE_FILE, export_best

    config = load_run(run)[1]
    dataset = load_dataset(args, kind, default_classes=config.classes)[0]
    folder = folder_of_run(run)
    record = export_best(
        run,
        args.out,
        calibration_data=dataset,
        num_calibration_samples=args.num_calibration,
        max_unmatched=args.max_unmatched,
    )
    print(f"Keras: {record['keras_median_ms']:.1f} ms per image")
    for row in record["candidates"]:
        if "error" in row:
            print(f"{row['runtime']:<12} {row['precision']:<8} not exported: {row['error']}")
            continue
        verdict = f"{row['unmatched']} of {row['detections']} detection(s) unmatched: "
        verdict += "agrees" if row["agree"] else "disagrees"
        print(f"{row['runtime']:<12} {row['precision']:<8} {row['median_ms']:8.1f} ms  {verdict}")
    chosen = record["chosen"]
    if chosen is None:
        print(
            f"no export is faster than Keras and agrees with it; recorded in {folder / CHOICE_FILE}"
        )
    else:
        print(
            f"chosen: {chosen['runtime']} {chosen['precision']} ({folder / chosen['path']}); "
            f"recorded in {folder / CHOICE_FILE}"
        )
    return 0


# --------------------------------------------------------------------------- demo


def cmd_demo(args) -> int:
    from ssd_keras.demo import run_demo

    run_demo(
        args.out, minutes=args.minutes, n_train=args.n_train, n_test=args.n_test, seed=args.seed
    )
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "prune": cmd_prune,
    "export": cmd_export,
    "demo": cmd_demo,
    "inspect": cmd_inspect,
    "anchors": cmd_anchors,
}
