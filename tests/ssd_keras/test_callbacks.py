"""mAP during training and the time budget, through `train`."""

from __future__ import annotations

from ssd_keras.callbacks import MeanAveragePrecision, StopAfterMinutes
from ssd_keras.config import RunConfig
from ssd_keras.data import load_voc
from ssd_keras.train import train

from .conftest import TINY_IMAGE_SIZE


def test_stopped_run_evaluates_its_final_weights(tiny_shapes, tmp_path):
    config = RunConfig.create("ssd7", tiny_shapes["classes"], image_size=TINY_IMAGE_SIZE)
    train_data = load_voc(tiny_shapes["root"], "train", config.classes)
    test_data = load_voc(tiny_shapes["root"], "test", config.classes)
    mean_ap = MeanAveragePrecision(config, test_data, every=5, batch_size=6)
    # A zero budget stops training at the end of epoch 1 of 10; every=5 would never evaluate,
    # so the only record comes from on_train_end.
    stop = StopAfterMinutes(0, exclude=mean_ap)
    result = train(
        config,
        train_data,
        tmp_path / "run",
        epochs=10,
        batch_size=4,
        steps_per_epoch=2,
        augmentation="none",
        extra_callbacks=[mean_ap, stop],
        verbose=0,
    )
    assert len(result.history["loss"]) == 1
    assert [r["epoch"] for r in mean_ap.records] == [1]
    record = mean_ap.records[0]
    assert 0.0 <= record["mAP_11point"] <= 1.0 and 0.0 <= record["mAP_all_point"] <= 1.0
    assert record["train_minutes"] > 0 and mean_ap.eval_seconds > 0
