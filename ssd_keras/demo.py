"""The end-to-end demo: synthetic shapes -> SSD7 trained on the CPU -> mAP, pictures, loss curve.

``python -m ssd_keras demo`` (or ``make demo``) runs it in a few minutes on a laptop CPU. The
dataset is `data_generator.synthetic_shapes` (five shape classes on textured backgrounds), so
nothing is downloaded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

#: Demo settings: small images keep SSD7 fast on two CPU cores.
DEMO_IMAGE_SIZE = (120, 160)
DEMO_N_TRAIN = 1000
DEMO_N_TEST = 100
DEMO_BATCH_SIZE = 8
DEMO_STEPS_PER_EPOCH = 40
#: SSD300's offset variances instead of the SSD7 notebook's 1.0: they scale the localisation
#: targets up 5-10x, and in a 6-minute run that is the difference between boxes that are off by
#: half an object (mAP ~0.4) and tight boxes (mAP ~0.99), measured on this demo.
DEMO_MODEL_OVERRIDES = {"variances": [0.1, 0.1, 0.2, 0.2]}


def run_demo(
    out_dir="runs/demo",
    minutes: float = 6.0,
    n_train: int = DEMO_N_TRAIN,
    n_test: int = DEMO_N_TEST,
    max_epochs: int = 200,
    steps_per_epoch: int = DEMO_STEPS_PER_EPOCH,
    batch_size: int = DEMO_BATCH_SIZE,
    n_pictures: int = 8,
    augmentation: str = "none",
    model_overrides: dict | None = None,
    seed: int = 0,
    verbose: bool = True,
) -> dict:
    """Generates the data, trains SSD7 for about ``minutes``, evaluates, draws, and reports.

    Args:
        out_dir: the demo folder (``data/``, ``run/``, ``evaluation/``, ``predictions/``,
            ``summary.json``); a previous demo there is replaced.
        minutes: training time budget (checked after every batch).
        n_train, n_test: synthetic images of each split.
        max_epochs: upper bound on the epochs.
        steps_per_epoch: batches per epoch.
        batch_size: training batch size.
        n_pictures: test images to draw predictions on.
        augmentation: see `ssd_keras.data.training_transformations`. The demo trains only a
            few epochs' worth of steps on 1000 images, where augmentation slows learning more
            than it helps; ``'constant'`` is the SSD7 recipe for real runs.
        model_overrides: `RunConfig.create` overrides of the SSD7 builder arguments (None:
            `DEMO_MODEL_OVERRIDES`).
        seed: seed of the data, the weights and the augmentation.
        verbose: print progress.

    Returns:
        The summary dict (also written to ``summary.json``).
    """
    from ssd_keras.callbacks import StopAfterMinutes
    from ssd_keras.evaluate import evaluate
    from ssd_keras.train import train

    start = time.perf_counter()
    out_dir = Path(out_dir)
    say = print if verbose else (lambda *a, **k: None)

    say(f"[1/4] generating the synthetic shapes dataset ({n_train} train / {n_test} test images)")
    info, config, train_data, test_data = _demo_data(
        out_dir / "data", n_train, n_test, model_overrides, seed
    )

    say(f"[2/4] training SSD7 for about {minutes:g} minutes on the CPU")
    t0 = time.perf_counter()
    result = train(
        config,
        train_data,
        out_dir / "run",
        epochs=max_epochs,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        augmentation=augmentation,
        early_stopping_patience=None,
        overwrite=True,
        seed=seed,
        extra_callbacks=[StopAfterMinutes(minutes, per_batch=True)],
        verbose=2 if verbose else 0,
    )
    train_minutes = (time.perf_counter() - t0) / 60

    say("[3/4] evaluating on the test split (Pascal VOC mAP, IoU 0.5)")
    metrics = evaluate(
        result.model,
        config,
        test_data,
        batch_size=16,
        out_dir=out_dir / "evaluation",
        verbose=verbose,
    )

    say(f"[4/4] drawing predictions on {n_pictures} test images")
    pictures_dir = out_dir / "predictions"
    pictures = _draw_predictions(result.model, config, test_data, pictures_dir, n_pictures)

    summary = _summary(
        metrics, result, config, info, out_dir, batch_size, augmentation, train_minutes, start
    )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    say(_summary_text(summary, out_dir, n_train, n_test, len(pictures)))
    return summary


def _demo_data(data_dir: Path, n_train: int, n_test: int, model_overrides, seed: int):
    """Writes the synthetic dataset; returns its info, the SSD7 `RunConfig` and the train and
    test `DataGenerator`s."""
    from data_generator.synthetic_shapes import make_synthetic_dataset
    from ssd_keras.config import RunConfig
    from ssd_keras.data import load_voc

    info = make_synthetic_dataset(
        data_dir, n_train=n_train, n_test=n_test, image_size=DEMO_IMAGE_SIZE, seed=seed
    )
    config = RunConfig.create(
        "ssd7",
        info["classes"],
        image_size=DEMO_IMAGE_SIZE,
        **(DEMO_MODEL_OVERRIDES if model_overrides is None else model_overrides),
    )
    train_data = load_voc(info["root"], "train", config.classes)
    test_data = load_voc(info["root"], "test", config.classes)
    return info, config, train_data, test_data


def _draw_predictions(model, config, test_data, pictures_dir: Path, n_pictures: int) -> list:
    """Draws the model's detections and the ground truth on the first ``n_pictures`` test
    images (upscaled 3x) into ``pictures_dir``; returns the written paths."""
    import cv2

    from data_generator.image_io import read_image
    from ssd_keras.predict import Predictor, draw_detections

    pictures_dir.mkdir(parents=True, exist_ok=True)
    predictor = Predictor(model, config, confidence_thresh=0.5)
    pictures = []
    for i in range(min(n_pictures, test_data.get_dataset_size())):
        image = read_image(test_data.filenames[i])
        detections = predictor([image])[0]
        drawn = draw_detections(image, detections, config.classes, test_data.labels[i])
        path = pictures_dir / f"{Path(test_data.filenames[i]).stem}_pred.png"
        # Upscaled so the small demo images are easy to look at.
        drawn = cv2.resize(drawn, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(path), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        pictures.append(str(path))
    return pictures


def _summary(
    metrics, result, config, info, out_dir, batch_size, augmentation, train_minutes, start
):
    """The demo's ``summary.json``: mAP, training length, settings and the files written."""
    return {
        "mAP_11point": metrics["mAP_11point"],
        "mAP_all_point": metrics["mAP_all_point"],
        "per_class_ap_11point": {k: v["ap_11point"] for k, v in metrics["per_class"].items()},
        "epochs": len(result.history.get("loss", [])),
        "steps": int(result.model.optimizer.iterations),
        "batch_size": batch_size,
        "image_size": list(DEMO_IMAGE_SIZE),
        "augmentation": augmentation,
        "variances": config.model_kwargs["variances"],
        "train_minutes": round(train_minutes, 2),
        "total_minutes": round((time.perf_counter() - start) / 60, 2),
        "final_loss": result.history["loss"][-1] if result.history.get("loss") else None,
        "files": {
            "dataset": info["root"],
            "model": str(result.paths["model"]),
            "loss_curve": str(result.paths.get("loss_curve")),
            "training_log": str(result.paths["log"]),
            "metrics": str(out_dir / "evaluation" / "metrics.json"),
            "ap_chart": str(out_dir / "evaluation" / "average_precisions.png"),
            "pr_curves": str(out_dir / "evaluation" / "pr_curves"),
            "predictions": str(out_dir / "predictions"),
        },
    }


def _summary_text(summary: dict, out_dir: Path, n_train: int, n_test: int, n_pictures: int) -> str:
    """The closing message of the demo."""
    return (
        f"\nDemo done in {summary['total_minutes']:.1f} min: SSD7 trained {summary['epochs']} "
        f"epochs ({summary['steps']} steps, {summary['train_minutes']:.1f} min) on "
        f"{n_train} synthetic images.\n"
        f"  test mAP (VOC, IoU 0.5): {summary['mAP_11point']:.3f} (11-point), "
        f"{summary['mAP_all_point']:.3f} (all-point) on {n_test} images\n"
        f"  loss curve:        {summary['files']['loss_curve']}\n"
        f"  prediction images: {out_dir / 'predictions'}/ ({n_pictures} files)\n"
        f"  AP chart:          {summary['files']['ap_chart']}\n"
        f"  model:             {summary['files']['model']}\n"
        f"  summary:           {out_dir / 'summary.json'}"
    )
