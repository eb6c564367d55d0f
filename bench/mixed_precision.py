"""Mixed precision vs float32: SSD7 training step time and loss curves, side by side in one run.

SSD7 on BCCD (240x320, batch 8, variances 0.1/0.1/0.2/0.2, Adam 1e-3, the original SSD loss).
The policy is `ssd_keras.train.mixed_precision_policy` (``mixed_bfloat16`` on a CPU,
``mixed_float16`` with loss scaling on a GPU), exactly what ``train --mixed-precision`` uses.

1. Step time: the float32 and the mixed model take training steps in turns on the same batches
   (after warm-up), so machine load hits both alike; medians are reported and their ratio.
2. Loss curves: float32 (seed 0), mixed (seed 0) and float32 (seed 1, the noise reference) train
   ``--steps`` steps each on the same sequence of batches. Within noise = the mixed curve is no
   further from float32 seed 0 than float32 seed 1 is (mean absolute difference of the curves
   smoothed over 20 steps, over the last half of the steps).

Batches are encoded once before timing (``--distinct-batches`` of them, cycled), so the data
pipeline is left out. Prints one JSON object (also ``--out FILE``).

Usage::

    python bench/mixed_precision.py                 # 300 steps per curve, 30 timed steps
    python bench/mixed_precision.py --steps 100     # a shorter run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine_info, write_report  # noqa: E402

BCCD = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "bccd" / "BCCD"
CLASSES = ["background", "RBC", "WBC", "Platelets"]


def _smooth(values, window: int = 20):
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(BCCD))
    parser.add_argument("--image-size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300, help="steps per loss curve")
    parser.add_argument("--timed-steps", type=int, default=30, help="timed steps per policy")
    parser.add_argument("--distinct-batches", type=int, default=25)
    parser.add_argument("--policy", help="default: ssd_keras.train.mixed_precision_policy()")
    parser.add_argument("--out", help="also write the JSON here")
    return parser.parse_args(argv)


@dataclass
class _Trainer:
    """SSD7 models under a dtype policy, trained step by step on a fixed list of batches."""

    config: object
    batches: list

    def build(self, name: str, seed: int):
        import keras

        from keras_loss_function.keras_ssd_loss import SSDLoss
        from ssd_keras.train import dtype_policy, make_optimizer

        keras.utils.set_random_seed(seed)
        with dtype_policy(name):
            model = self.config.build_model()
        optimizer = make_optimizer("adam", 1e-3)
        if model.dtype_policy.name == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model.compile(optimizer=optimizer, loss=SSDLoss(neg_pos_ratio=3, alpha=1.0))
        return model

    def step(self, model, index: int) -> float:
        images, targets = self.batches[index % len(self.batches)]
        return float(model.train_on_batch(images, targets))


def _trainer(args) -> _Trainer:
    from ssd_keras.config import RunConfig
    from ssd_keras.data import load_voc, training_transformations

    config = RunConfig.create(
        "ssd7", CLASSES, image_size=args.image_size, variances=[0.1, 0.1, 0.2, 0.2]
    )
    encoder = config.build_encoder(config.predictor_sizes())
    dataset = load_voc(args.data, "train", CLASSES).to_py_dataset(
        batch_size=args.batch_size,
        shuffle=True,
        transformations=training_transformations(config, "constant", seed=0),
        label_encoder=encoder,
        seed=0,
    )
    return _Trainer(config, [dataset[i % len(dataset)] for i in range(args.distinct_batches)])


def _step_times(trainer: _Trainer, policy: str, timed_steps: int):
    """Step 1: median step seconds of float32 and `policy`, in turns after a warm-up; and the
    load average when the timing started."""
    models = {"float32": trainer.build("float32", 0), policy: trainer.build(policy, 0)}
    for model in models.values():  # warm-up: tracing and compilation
        trainer.step(model, 0)
        trainer.step(model, 1)
    times = {name: [] for name in models}
    load_start = os.getloadavg()
    for i in range(timed_steps):
        for name, model in models.items():
            started = time.perf_counter()
            trainer.step(model, i)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}, load_start


def _loss_curves(trainer: _Trainer, policy: str, steps: int) -> dict:
    """Step 2: loss curves on the same batch sequence (float32 twice, seeds 0 and 1, and
    `policy`), with each model's output dtype and whether its output is finite."""
    import keras
    import numpy as np

    curves = {}
    for label, name, seed in (
        ("float32_seed0", "float32", 0),
        (f"{policy}_seed0", policy, 0),
        ("float32_seed1", "float32", 1),
    ):
        model = trainer.build(name, seed)
        curves[label] = [trainer.step(model, i) for i in range(steps)]
        output = model.predict(trainer.batches[0][0][:1], verbose=0)
        curves[label + "_output_dtype"] = str(output.dtype)
        curves[label + "_output_finite"] = bool(np.isfinite(output).all())
        keras.backend.clear_session()
    return curves


def main(argv=None) -> dict:
    args = _parse_args(argv)
    import numpy as np

    from ssd_keras.train import mixed_precision_policy

    policy = args.policy or mixed_precision_policy()
    trainer = _trainer(args)
    medians, load_start = _step_times(trainer, policy, args.timed_steps)
    curves = _loss_curves(trainer, policy, args.steps)

    smooth = {k: _smooth(v) for k, v in curves.items() if isinstance(v, list)}
    half = args.steps // 2

    def distance(a: str, b: str) -> float:
        return float(np.mean(np.abs(np.array(smooth[a][half:]) - np.array(smooth[b][half:]))))

    mixed_gap = distance(f"{policy}_seed0", "float32_seed0")
    seed_gap = distance("float32_seed1", "float32_seed0")
    report = {
        "benchmark": "mixed_precision",
        "policy": policy,
        "model": "ssd7",
        "image_size": list(args.image_size),
        "batch_size": args.batch_size,
        "step_seconds_median": medians,
        "speedup_mixed_vs_float32": medians["float32"] / medians[policy],
        "timed_steps": args.timed_steps,
        "loss_steps": args.steps,
        "final_loss_smoothed": {k: v[-1] for k, v in smooth.items()},
        "mean_abs_gap_last_half": {"mixed_vs_float32": mixed_gap, "seed1_vs_seed0": seed_gap},
        "within_noise": bool(mixed_gap <= seed_gap),
        "nan": any(not np.isfinite(v) for c in smooth.values() for v in c),
        "outputs": {k: v for k, v in curves.items() if not isinstance(v, list)},
        "loss_curves": {
            k: [round(v, 4) for v in c] for k, c in curves.items() if isinstance(c, list)
        },
        "machine": machine_info(load_start),
    }
    return write_report(report, args.out)


if __name__ == "__main__":
    main()
