"""Pruning benchmark: SSD7 on BCCD, dense vs magnitude-pruned vs filter-pruned, mAP and latency.

Steps (one process, one JSON object on stdout, also written to ``<out>/bench_pruning.json``):

1. a dense SSD7 is trained on BCCD ``train`` for ``--dense-epochs`` (or loaded with
   ``--dense-model run/model.keras`` from a previous ``python -m ssd_keras train`` run);
2. every variant gets the SAME fine-tuning budget (``--finetune-epochs`` x ``--steps-per-epoch``
   batches, Adam at ``--finetune-lr``) starting from the dense weights:
   ``dense`` (just more training), ``magnitude_50`` / ``magnitude_80`` (`prune_low_magnitude`,
   PolynomialDecay 0 -> s over the first 2/3 of the steps, then `strip_pruning`), and
   ``structured_30`` / ``structured_50`` (`prune_filters` on conv1..conv7 by BN gamma);
3. each variant is evaluated on BCCD ``test`` (Pascal VOC 11-point and all-point mAP);
4. CPU latency at batch 1: the Keras model (``predict_on_batch``) and its float32 TFLite export
   (LiteRT, ``--threads`` threads), measured round-robin over the variants to share the noise;
   plus int8 TFLite (full-integer PTQ calibrated on ``train`` images) for the dense and
   structured-50 models, with its mAP.

Speedups are ratios to the dense model measured in the same rounds. The issue's target is
structured 50% >= 1.6x CPU speedup with <= 1 mAP point lost; the JSON states what was reached.

Usage::

    python bench/pruning.py --dense-epochs 30 --finetune-epochs 10          # the real run
    python bench/pruning.py --dense-epochs 1 --finetune-epochs 1 --steps-per-epoch 5 \\
        --image-size 120 160 --latency-runs 20                                # smoke run
    python bench/pruning.py --dense-epochs 3 --variants dense --finetune-epochs 0 --no-int8 \\
        --light-epochs 3 --latency-runs 5            # issue 14: pruning a lightly trained model
    python bench/pruning.py --dense-epochs 0 --finetune-epochs 0 --no-eval   # latency/size only
                                                             # (untrained weights; magnitude
                                                             # variants get their sparsity at once)

Speedups: ``keras`` vs the dense Keras model, ``tflite_fp32`` and ``tflite_int8`` vs the dense
float32 TFLite model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine_info, write_report  # noqa: E402

BCCD = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "bccd" / "BCCD"
CLASSES = ["background", "RBC", "WBC", "Platelets"]


def _fine_tune(model, config, train_data, epochs, steps, lr, seed, callbacks=()):
    """Fit `model` on BCCD train for `epochs` x `steps` batches with the SSD7 recipe's data."""
    import keras

    from keras_loss_function.keras_ssd_loss import SSDLoss
    from ssd_keras.data import training_transformations
    from ssd_keras.train import FixedStepsDataset

    if epochs < 1:
        return [None], 0.0
    _, predictor_sizes = config.build_model("training", return_predictor_sizes=True)
    encoder = config.build_encoder(predictor_sizes)
    data = train_data.to_py_dataset(
        batch_size=8,
        shuffle=True,
        transformations=training_transformations(config, "constant", seed),
        label_encoder=encoder,
        seed=seed,
    )
    data = FixedStepsDataset(data, steps)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=SSDLoss(neg_pos_ratio=3, alpha=1.0))

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            _log(f"  {model.name} epoch {epoch + 1}/{epochs} loss {logs['loss']:.4f}")

    start = time.perf_counter()
    history = model.fit(data, epochs=epochs, callbacks=[*callbacks, EpochLog()], verbose=0)
    return [float(v) for v in history.history["loss"]], time.perf_counter() - start


def _conv_macs(model) -> int:
    """Multiply-accumulates of the Conv2D layers for one image (a noise-free cost measure)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw, c_in, _ = layer.kernel.shape
            total += int(h) * int(w) * int(c_out) * int(kh) * int(kw) * int(c_in)
    return total


def _latency_rounds(runners: dict, image, runs: int, rounds: int = 5) -> dict:
    """Median seconds per call for each runner, measured round-robin (`rounds` x `runs` calls)."""
    import numpy as np

    samples = {name: [] for name in runners}
    for fn in runners.values():  # warm-up (tracing, allocation)
        for _ in range(3):
            fn(image)
    for _ in range(rounds):
        for name, fn in runners.items():
            for _ in range(max(1, runs // rounds)):
                t = time.perf_counter()
                fn(image)
                samples[name].append(time.perf_counter() - t)
    return {name: float(np.median(v)) for name, v in samples.items()}


def _parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(BCCD), help="the BCCD folder (VOC layout)")
    parser.add_argument("--image-size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--dense-model", help="a trained training-mode SSD7 .keras to start from")
    parser.add_argument("--dense-epochs", type=int, default=30)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--steps-per-epoch", type=int, default=26, help="26 x 8 ~ one BCCD pass")
    parser.add_argument("--finetune-lr", type=float, default=1e-4)
    parser.add_argument("--dense-lr", type=float, default=1e-3, help="Adam rate of dense training")
    parser.add_argument(
        "--variances",
        type=float,
        nargs=4,
        help="box-offset variances (SSD7 recipe: 1 1 1 1; 0.1 0.1 0.2 0.2 trains far better on "
        "BCCD, see bench/train_bccd.py)",
    )
    parser.add_argument("--variants", default="dense,magnitude_50,magnitude_80,structured_30,"
                        "structured_50")  # fmt: skip
    parser.add_argument(
        "--round-to",
        type=int,
        default=1,
        help="structured variants keep a multiple of this many filters per layer (8: "
        "SIMD-friendly widths)",
    )
    parser.add_argument(
        "--criterion",
        default="bn_gamma",
        choices=("l1", "l2", "bn_gamma", "contribution"),
        help="filter criterion of the structured variants",
    )
    parser.add_argument(
        "--light-epochs",
        type=int,
        default=0,
        help="the user's case of issue 14: also train a second SSD7 for this many epochs only and "
        "prune it by every criterion, without and with --light-finetune-epochs of fine-tuning",
    )
    parser.add_argument("--light-amounts", default="0.1,0.5", help="filter fractions (light case)")
    parser.add_argument("--light-finetune-epochs", type=int, default=1)
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads")
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument(
        "--no-eval", action="store_true", help="skip every mAP evaluation (latency/size only)"
    )
    parser.add_argument("--out", default="runs/bench_pruning")
    parser.add_argument("--json", help="also write the JSON report to this file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if not (Path(args.data) / "ImageSets" / "Main" / "train.txt").is_file():
        parser.exit(2, f"BCCD not found at {args.data} (expected ImageSets/Main/train.txt)\n")
    for name in args.variants.split(","):
        if name != "dense" and not name.startswith(("magnitude_", "structured_")):
            parser.exit(2, f"unknown variant {name!r}\n")
    return args


@dataclass
class _Setup:
    """What every step shares: the arguments, the SSD7 config, BCCD train/test, the out folder."""

    args: argparse.Namespace
    config: object
    train_data: object
    test_data: object
    out: Path

    @property
    def steps(self) -> int:
        return int(self.args.steps_per_epoch)

    def fine_tune(self, model, epochs, lr, seed, callbacks=()):
        return _fine_tune(
            model, self.config, self.train_data, epochs, self.steps, lr, seed, callbacks=callbacks
        )

    def evaluate(self, model) -> dict:
        """BCCD test mAP of `model` (None values with ``--no-eval``)."""
        from ssd_keras.evaluate import evaluate

        if self.args.no_eval:
            return {"mAP_11point": None, "mAP_all_point": None}
        return evaluate(model, self.config, self.test_data, verbose=False, plots=False)


def _dense_model(setup: _Setup):
    """Step 1: the dense SSD7, trained here or loaded; saved as the variants' start."""
    import keras

    args = setup.args
    info = {}
    if args.dense_model:
        dense = keras.models.load_model(args.dense_model, compile=False)
        info["loaded_from"] = args.dense_model
    else:
        dense = setup.config.build_model("training")
        losses, seconds = setup.fine_tune(dense, args.dense_epochs, args.dense_lr, args.seed)
        info.update(
            {
                "epochs": args.dense_epochs,
                "learning_rate": args.dense_lr,
                "train_seconds": round(seconds, 1),
                "final_loss": losses[-1],
            }
        )
    info["mAP_11point_before_finetune"] = setup.evaluate(dense)["mAP_11point"]
    dense.save(setup.out / "dense_start.keras")
    _log(f"dense: {json.dumps(info)}")
    return dense, info


def _magnitude_variant(setup: _Setup, start_model, target: float, info: dict):
    """`prune_low_magnitude` to `target` sparsity over the first 2/3 of the fine-tuning."""
    from model_optimization.pruning import (
        PolynomialDecay,
        UpdatePruningStep,
        prune_low_magnitude,
        pruning_wrappers,
        sparsity_report,
        strip_pruning,
    )

    args = setup.args
    total_steps = int(args.finetune_epochs) * setup.steps
    end = max(1, (2 * total_steps) // 3)
    schedule = PolynomialDecay(0.0, target, begin_step=0, end_step=end,
                               frequency=max(1, end // 10))  # fmt: skip
    # end_step must lie on the update grid for the final sparsity to be applied
    schedule.end_step = (end // schedule.frequency) * schedule.frequency
    pruned = prune_low_magnitude(start_model, schedule)
    losses, seconds = setup.fine_tune(
        pruned, args.finetune_epochs, args.finetune_lr, args.seed, callbacks=[UpdatePruningStep()]
    )
    if args.finetune_epochs < 1:  # no training: apply the final sparsity once
        for wrapper in pruning_wrappers(pruned):
            wrapper.update_masks(target)
    model = strip_pruning(pruned)
    rows = sparsity_report(model)
    pruned_rows = [r for r in rows if r["layer"].startswith(("conv", "classes", "boxes"))]
    info["kernel_sparsity"] = sum(r["zeros"] for r in pruned_rows) / sum(
        r["size"] for r in pruned_rows
    )
    return model, losses, seconds


def _structured_variant(setup: _Setup, start_model, amount: float, info: dict):
    """`prune_filters` by ``--criterion``, evaluated before and after the fine-tuning."""
    from model_optimization.structured import filter_pruning_report, prune_filters

    args = setup.args
    model = prune_filters(
        start_model, amount=amount, criterion=args.criterion, round_to=args.round_to
    )
    info["filters"] = {
        r["layer"]: [r["filters_before"], r["filters_after"]]
        for r in filter_pruning_report(start_model, model)
        if r["layer"].startswith("conv")
    }
    info["mAP_11point_before_finetune"] = setup.evaluate(model)["mAP_11point"]
    losses, seconds = setup.fine_tune(model, args.finetune_epochs, args.finetune_lr, args.seed)
    return model, losses, seconds


def _variant(setup: _Setup, name: str):
    """Step 2: one variant from the dense start with the common fine-tuning budget."""
    import keras

    args = setup.args
    start_model = keras.models.load_model(setup.out / "dense_start.keras", compile=False)
    info: dict = {"finetune_steps": int(args.finetune_epochs) * setup.steps}
    if name == "dense":
        model = start_model
        losses, seconds = setup.fine_tune(model, args.finetune_epochs, args.finetune_lr, args.seed)
    elif name.startswith("magnitude_"):
        target = int(name.split("_")[1]) / 100
        model, losses, seconds = _magnitude_variant(setup, start_model, target, info)
    else:  # structured_<percent> (_parse_args checked the names)
        amount = int(name.split("_")[1]) / 100
        model, losses, seconds = _structured_variant(setup, start_model, amount, info)
    result = setup.evaluate(model)
    info.update({
        "params": int(model.count_params()),
        "conv_macs": _conv_macs(model),
        "finetune_seconds": round(seconds, 1),
        "final_loss": losses[-1],
        "mAP_11point": result["mAP_11point"],
        "mAP_all_point": result["mAP_all_point"],
    })  # fmt: skip
    _log(f"{name}: {json.dumps(info)}")
    return model, info


def _lightly_trained(setup: _Setup):
    """Step 2b, the user's case (issue 14): a lightly trained SSD7, filter-pruned by each
    criterion, evaluated without fine-tuning and after a short one (None without
    ``--light-epochs``)."""
    import keras

    from model_optimization.structured import prune_filters

    args = setup.args
    if not args.light_epochs:
        return None
    light = setup.config.build_model("training")
    _, seconds = setup.fine_tune(light, args.light_epochs, args.dense_lr, args.seed + 1)
    light.save(setup.out / "light_start.keras")
    light_info = {"epochs": args.light_epochs, "train_seconds": round(seconds, 1)}
    light_info.update({"mAP_11point": setup.evaluate(light)["mAP_11point"], "pruned": {}})
    for amount in (float(a) for a in args.light_amounts.split(",")):
        for criterion in ("bn_gamma", "l1", "contribution"):
            start_model = keras.models.load_model(setup.out / "light_start.keras", compile=False)
            model = prune_filters(start_model, amount=amount, criterion=criterion)
            row = {"no_finetune": setup.evaluate(model)["mAP_11point"]}
            setup.fine_tune(model, args.light_finetune_epochs, args.finetune_lr, args.seed)
            row[f"finetune_{args.light_finetune_epochs}_epochs"] = setup.evaluate(model)[
                "mAP_11point"
            ]
            light_info["pruned"][f"filters_{amount:g}_{criterion}"] = row
            _log(f"light filters {amount:g} {criterion}: {json.dumps(row)}")
    return light_info


def _int8_runners(setup: _Setup, models: dict, folder: Path):
    """int8 TFLite exports (calibrated on 100 train images) of the dense and structured_50
    models: their LiteRT runners and their mAP."""
    from model_optimization.export import LiteRTRunner, export
    from ssd_keras.data import evaluation_resize

    resize = evaluation_resize(setup.config)
    calibration = []
    for i, (img, labels) in enumerate(_images(setup.train_data)):
        for transform in resize:
            img, labels = transform(img, labels)
        calibration.append(img.astype("float32"))
        if i >= 99:
            break
    runners, int8 = {}, {}
    for name in ("dense", "structured_50"):
        if name not in models:
            continue
        path = export(models[name], folder / f"{name}_int8.tflite", format="tflite",
                      quantization="int8", representative_data=calibration)  # fmt: skip
        runner = LiteRTRunner(path, num_threads=setup.args.threads)
        runners[f"{name}/tflite_int8"] = runner
        result = setup.evaluate(runner)
        int8[name] = {"mAP_11point": result["mAP_11point"],
                      "mAP_all_point": result["mAP_all_point"]}  # fmt: skip
        _log(f"{name} int8: {json.dumps(int8[name])}")
    return runners, int8


def _add_latency(setup: _Setup, models: dict, variants: dict) -> None:
    """Step 3: latency, round-robin (TFLite exports in a temporary folder), into `variants`."""
    import numpy as np

    from model_optimization.export import LiteRTRunner, export

    args = setup.args
    image = np.random.default_rng(0).uniform(0, 255, (1, *args.image_size, 3)).astype("float32")
    tmp = Path(tempfile.mkdtemp(prefix="bench_pruning_"))
    runners = {}
    for name, model in models.items():
        runners[f"{name}/keras"] = model.predict_on_batch
        path = export(model, tmp / f"{name}.tflite", format="tflite")
        runners[f"{name}/tflite_fp32"] = LiteRTRunner(path, num_threads=args.threads)
    int8 = {}
    if not args.no_int8:
        int8_runners, int8 = _int8_runners(setup, models, tmp)
        runners.update(int8_runners)
    _log("latency rounds")
    latency = _latency_rounds(runners, image, args.latency_runs)
    base_keras = latency.get("dense/keras")
    base_tflite = latency.get("dense/tflite_fp32")
    for key, seconds in latency.items():
        name, runtime = key.split("/")
        entry = variants.setdefault(name, {}).setdefault("latency_ms", {})
        entry[runtime] = round(seconds * 1000, 3)
        base = base_keras if runtime == "keras" else base_tflite
        if base:
            variants[name].setdefault("speedup_vs_dense", {})[runtime] = round(base / seconds, 3)
    for name, values in int8.items():
        variants[name]["int8"] = values


def _target(variants: dict):
    """The issue's target, when both the dense and the structured_50 variants ran."""
    if "dense" not in variants or "structured_50" not in variants:
        return None
    d, s = variants["dense"], variants["structured_50"]
    return {
        "goal": "structured_50 >= 1.6x CPU speedup with <= 1 mAP point lost",
        "speedup_tflite_fp32": s.get("speedup_vs_dense", {}).get("tflite_fp32"),
        "speedup_keras": s.get("speedup_vs_dense", {}).get("keras"),
        "mAP_points_lost": None
        if d["mAP_11point"] is None
        else round(100 * (d["mAP_11point"] - s["mAP_11point"]), 2),
    }


def main(argv=None) -> dict:
    args = _parse_args(argv)
    import keras

    from ssd_keras.config import RunConfig
    from ssd_keras.data import load_voc

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    keras.utils.set_random_seed(args.seed)
    overrides = {"variances": list(args.variances)} if args.variances else {}
    config = RunConfig.create("ssd7", CLASSES, image_size=tuple(args.image_size), **overrides)
    setup = _Setup(
        args, config, load_voc(args.data, "train", CLASSES), load_voc(args.data, "test", CLASSES),
        out,
    )  # fmt: skip

    _, dense_info = _dense_model(setup)
    variants, models = {}, {}
    for name in args.variants.split(","):
        models[name], variants[name] = _variant(setup, name)
    light_info = _lightly_trained(setup)
    _add_latency(setup, models, variants)

    report = {
        "benchmark": "pruning",
        "model": "ssd7",
        "image_size": list(args.image_size),
        "variances": config.model_kwargs.get("variances"),
        "dense": dense_info,
        "finetune": {
            "epochs": args.finetune_epochs,
            "steps_per_epoch": setup.steps,
            "learning_rate": args.finetune_lr,
            "structured_round_to": args.round_to,
        },  # fmt: skip
        "variants": variants,
        "lightly_trained": light_info,
        "target": _target(variants),
        "machine": machine_info(load_start, litert_threads=args.threads),
    }
    return write_report(report, out / "bench_pruning.json", args.json)


def _log(message: str) -> None:
    """A time-stamped progress line on stderr (the JSON goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _images(dataset):
    """(image, labels) pairs of a DataGenerator, in order, without augmentation."""
    import numpy as np

    from data_generator.image_io import read_image

    for i, filename in enumerate(dataset.filenames):
        labels = np.asarray(dataset.labels[i], dtype=np.float32) if dataset.labels else None
        yield read_image(filename), labels


if __name__ == "__main__":
    main()
