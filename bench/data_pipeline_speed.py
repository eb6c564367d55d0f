"""Speed of the training data pipeline: JPEG files -> SSDDataAugmentation -> SSD300 encoding.

Every mode does the same work per batch of ``--batch-size`` (32) images: read the JPEG files
(RGB uint8), run the Caffe SSD augmentation chain (`SSDDataAugmentation`, 300x300 output), drop
degenerate boxes and encode the labels with an SSD300 (VOC) `SSDInputEncoder`
(`(batch, 8732, 33)`). Modes:

- ``plain_generator``: a plain Python generator written directly (cv2 read, augment, encode) in
  one process: the baseline. It visits the items in the PyDataset's order and re-seeds the
  augmentation per batch like it, so it builds the very same batches (checked on the first);
- ``generate``: `DataGenerator.generate` in one process;
- ``pydataset_threads_<w>`` / ``pydataset_processes_<w>``: `DataGenerator.to_py_dataset` with
  ``w`` workers (threads / processes), iterated by Keras' own PyDataset adapter, the way
  ``model.fit`` iterates it;
- ``ssd300_train_step`` (unless ``--no-train-step``): images per second that one SSD300
  training step (forward + backward, SSDLoss, SGD) consumes on this machine, at
  ``--train-batch``.

Images come from ``../shared/data/voc2012_sample`` when present (real JPEGs, about 500x375),
else from the synthetic shapes dataset written to a temporary directory; the list of files is
repeated to give enough batches. Each run times ``--batches`` batches from the creation of the
iterator (so a PyDataset's worker start-up counts against it); the best of ``--repeats`` runs per
mode is reported (the modes take turns), with the median and all runs alongside.

Prints one JSON object. Usage: ``python bench/data_pipeline_speed.py [--batches 8]
[--workers 2] [--no-train-step]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import SSD300_ENCODER_KWARGS  # noqa: E402
from data_generator.image_io import read_image  # noqa: E402
from data_generator.object_detection_2d_data_generator import (  # noqa: E402
    DataGenerator,
    degenerate_mask,
)

LABELS_FORMAT = {"class_id": 0, "xmin": 1, "ymin": 2, "xmax": 3, "ymax": 4}


def load_parts():
    """The other packages' pieces; a clear message when one has not landed yet."""
    missing = []
    try:
        from data_generator.data_augmentation_chain_original_ssd import SSDDataAugmentation
    except ImportError as error:
        missing.append(f"SSDDataAugmentation ({error})")
        SSDDataAugmentation = None
    try:
        from ssd_encoder_decoder.ssd_input_encoder import SSDInputEncoder
    except ImportError as error:
        missing.append(f"SSDInputEncoder ({error})")
        SSDInputEncoder = None
    if missing:
        print(json.dumps({"error": "missing dependencies", "missing": missing}))
        sys.exit(2)
    return SSDDataAugmentation, SSDInputEncoder


def source_dataset(min_items: int) -> tuple[DataGenerator, str]:
    """A DataGenerator over JPEG files, repeated to at least ``min_items`` items."""
    voc = ROOT.parent / "shared" / "data" / "voc2012_sample"
    parsed = DataGenerator()
    if voc.is_dir():
        parsed.parse_xml(
            [str(voc / "JPEGImages")],
            [str(voc / "ImageSets/Main/test.txt")],
            [str(voc / "Annotations")],
            ["background"] + (voc / "voc.names").read_text().split(),
            verbose=False,
        )
        name = "voc2012_sample (100 real JPEGs)"
    else:
        from data_generator.synthetic_shapes import make_synthetic_dataset

        out = tempfile.mkdtemp(prefix="ssd_bench_shapes_")
        info = make_synthetic_dataset(out, n_train=100, n_test=0, image_size=(375, 500), seed=0)
        parsed.parse_xml(
            [info["images_dir"]],
            [info["image_sets"]["train"]],
            [info["annotations_dir"]],
            info["classes"],
            verbose=False,
        )
        name = "synthetic shapes (100 JPEGs, 500x375)"
    keep = [i for i, y in enumerate(parsed.labels) if len(y)]
    repeats = -(-min_items // len(keep))
    index = keep * repeats
    dataset = DataGenerator(
        filenames=[parsed.filenames[i] for i in index],
        labels=[parsed.labels[i] for i in index],
        image_ids=[f"{parsed.image_ids[i]}#{k}" for k, i in enumerate(index)],
        verbose=False,
    )
    return dataset, name


def plain_generator(filenames, labels, order, batch_size, augment, encoder, seed):
    """The baseline: a plain Python generator doing the same work, written directly.

    It visits the items in ``order`` (the PyDataset's epoch-0 order) and re-seeds the chain
    before each batch as the PyDataset does, so it builds exactly the PyDataset's batches.
    """
    from data_generator.keras_dataset import reseed_transformations

    batch = 0
    while True:
        reseed_transformations([augment], [seed, 0, batch])
        images, batch_labels = [], []
        for k in order[batch * batch_size : (batch + 1) * batch_size]:
            image, y = augment(read_image(filenames[k]), np.array(labels[k]))
            if image is None:
                continue
            y = np.asarray(y).reshape(-1, 5)
            degenerate = degenerate_mask(y, LABELS_FORMAT)
            if degenerate.any():  # the rule of generate(degenerate_box_handling="remove")
                y = y[~degenerate]
                if len(y) == 0:
                    continue
            images.append(image)
            batch_labels.append(y)
        batch += 1
        yield np.stack(images), encoder(batch_labels)


def time_batches(iterator, n_batches: int, warmup: int) -> dict:
    for _ in range(warmup):
        next(iterator)
    images = 0
    start = time.perf_counter()
    for _ in range(n_batches):
        x, y = next(iterator)
        assert y.shape[1:] == (8732, 33), y.shape
        images += len(x)
    seconds = time.perf_counter() - start
    return {"images": images, "seconds": round(seconds, 3), "images_per_s": images / seconds}


def pydataset_iterator(py_dataset):
    """Iterates a PyDataset the way model.fit does (Keras' adapter and enqueuer), epoch after
    epoch."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(py_dataset, shuffle=False)
    try:
        while True:
            adapter.on_epoch_begin()
            yield from adapter.get_numpy_iterator()
            adapter.on_epoch_end()
    finally:
        if adapter.enqueuer is not None:
            adapter.enqueuer.stop()


def train_step_rate(batch_size: int, steps: int, encoder) -> dict:
    import keras

    from keras_loss_function.keras_ssd_loss import SSDLoss
    from models.keras_ssd300 import SSD300_VOC, ssd_300

    model = ssd_300(**SSD300_VOC, mode="training")
    model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9), loss=SSDLoss())
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(batch_size, 300, 300, 3)).astype(np.float32)
    labels = [np.array([[1 + i % 20, 40, 50, 200, 260]]) for i in range(batch_size)]
    y = encoder(labels)
    model.train_on_batch(x, y)  # build + compile
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - start
    return {
        "batch_size": batch_size,
        "steps": steps,
        "seconds": round(seconds, 3),
        "images_per_s": batch_size * steps / seconds,
        "backend": keras.backend.backend(),
    }


def _parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per mode")
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="untimed batches first; keep 0 for the PyDataset modes: their workers prefetch the "
        "next batches while the warm-up batch is fetched, which inflates a short timed run",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per mode (best is kept)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--no-threads", action="store_true", help="skip the thread workers")
    parser.add_argument("--no-train-step", action="store_true")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def make_iterators(dataset, args, encoder, augmentation):
    """Fresh iterators, one per mode (a PyDataset's workers start with its iterator);
    ``augmentation()`` makes a freshly seeded SSDDataAugmentation."""
    order = dataset.to_py_dataset(batch_size=args.batch_size, seed=args.seed).epoch_order(0)
    yield (
        "plain_generator",
        plain_generator(
            dataset.filenames,
            dataset.labels,
            order,
            args.batch_size,
            augmentation(),
            encoder,
            args.seed,
        ),
    )
    yield (
        "generate",
        dataset.generate(
            batch_size=args.batch_size,
            transformations=[augmentation()],
            label_encoder=encoder,
            seed=args.seed,
        ),
    )
    for workers in args.workers:
        kinds = [True] if args.no_threads else [False, True]
        for use_multiprocessing in kinds:
            kind = "processes" if use_multiprocessing else "threads"
            py_dataset = dataset.to_py_dataset(
                batch_size=args.batch_size,
                transformations=[augmentation()],
                label_encoder=encoder,
                seed=args.seed,
                workers=workers,
                use_multiprocessing=use_multiprocessing,
            )
            yield f"pydataset_{kind}_{workers}", pydataset_iterator(py_dataset)


def same_first_batches(make) -> bool:
    """The baseline and the PyDataset modes build the same batches (same order, same re-seeded
    augmentation): checked on the first batch, so the rates compare the same work."""
    check = dict(make())
    first = {name: next(it) for name, it in check.items() if name != "generate"}
    for it in check.values():
        it.close()
    return all(
        np.array_equal(b[0], first["plain_generator"][0])
        and np.array_equal(b[1], first["plain_generator"][1])
        for b in first.values()
    )


def time_modes(make, args) -> dict:
    """The modes take turns, --repeats times, each with a fresh iterator that is closed (its
    workers stopped) before the next mode runs; the best and the median rate are reported,
    which damps the noise of a shared machine."""
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeats):
        for name, iterator in make():
            runs.setdefault(name, []).append(time_batches(iterator, args.batches, args.warmup))
            iterator.close()
    results = {}
    for name, timings in runs.items():
        rates = [t["images_per_s"] for t in timings]
        results[name] = {
            "images_per_run": timings[0]["images"],
            "runs": len(rates),
            "images_per_s": max(rates),
            "median_images_per_s": round(float(np.median(rates)), 2),
            "all_images_per_s": [round(r, 2) for r in rates],
        }
    return results


def add_train_step(output: dict, args, encoder, results: dict) -> None:
    """The SSD300 training step's rate, for comparison with the pipeline's (into `output`)."""
    try:
        train = train_step_rate(args.train_batch, args.train_steps, encoder)
    except Exception as error:  # report the pipeline numbers even without a model
        output["ssd300_train_step"] = {"error": f"{type(error).__name__}: {error}"}
    else:
        output["ssd300_train_step"] = train
        output["pipeline_faster_than_train_step"] = {
            name: r["images_per_s"] > train["images_per_s"] for name, r in results.items()
        }


def main(argv=None) -> dict:
    args = _parse_args(argv)
    SSDDataAugmentation, SSDInputEncoder = load_parts()
    encoder = SSDInputEncoder(**SSD300_ENCODER_KWARGS)
    n_items = args.batch_size * (args.batches + args.warmup + 1)
    dataset, source = source_dataset(n_items)

    def augmentation():
        return SSDDataAugmentation(300, 300, labels_format=LABELS_FORMAT, rng=args.seed)

    make = functools.partial(make_iterators, dataset, args, encoder, augmentation)
    same_batches = same_first_batches(make)
    results = time_modes(make, args)

    baseline = results["plain_generator"]["images_per_s"]
    ratios = {name: r["images_per_s"] / baseline for name, r in results.items()}
    output = {
        "benchmark": "data_pipeline_speed",
        "source": source,
        "batch_size": args.batch_size,
        "timed_batches": args.batches,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1_5_15_min_at_end": [round(v, 2) for v in os.getloadavg()],
        "plain_and_pydataset_first_batches_identical": same_batches,
        "results": results,
        "ratio_to_plain_generator": ratios,
    }
    best_parallel = max(
        (ratios[name] for name in results if name.startswith("pydataset_")), default=None
    )
    output["target_3x_plain_generator_met"] = best_parallel is not None and best_parallel >= 3
    if not args.no_train_step:
        add_train_step(output, args, encoder, results)
    for result in results.values():
        result["images_per_s"] = round(result["images_per_s"], 2)
    output["ratio_to_plain_generator"] = {k: round(v, 3) for k, v in ratios.items()}
    print(json.dumps(output, indent=2))
    return output


if __name__ == "__main__":
    main()
