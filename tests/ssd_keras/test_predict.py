"""Prediction helpers: boxes back in the original image's pixels, drawing, input discovery."""

from __future__ import annotations

import numpy as np
import pytest

from ssd_keras.config import RunConfig
from ssd_keras.predict import Predictor, collect_inputs, draw_detections


class _FixedOutputModel:
    """Stands in for a training-mode SSD: one confident anchor, the rest background."""

    def __init__(self, n_classes: int):
        self.n_classes = n_classes
        self.seen_shapes = []

    def predict_on_batch(self, batch):
        self.seen_shapes.append(batch.shape)
        n = batch.shape[0]
        y = np.zeros((n, 3, self.n_classes + 1 + 12), dtype=np.float32)
        y[:, :, 0] = 1.0  # background everywhere ...
        y[:, 0, 0], y[:, 0, 2] = 0.1, 0.9  # ... except anchor 0: class 2 with confidence 0.9
        c = self.n_classes + 1
        # offsets 0, so the box is the anchor: centre (0.5, 0.5), size (0.5, 0.25), normalised
        y[:, :, c + 4 : c + 8] = [0.5, 0.5, 0.5, 0.25]
        y[:, :, c + 8 : c + 12] = 1.0  # variances
        return y


def test_predictor_returns_boxes_in_original_pixels():
    config = RunConfig.create("ssd7", ["background", "a", "b"], image_size=(64, 96))
    model = _FixedOutputModel(config.n_classes)
    predictor = Predictor(model, config, confidence_thresh=0.5)
    # Anchor in the 64x96 input: x 0.25..0.75 of 96 = 24..72, y 0.375..0.625 of 64 = 24..40.
    # A 128x192 image is twice the input size, so the box doubles: 48..144 and 48..80; a 64x48
    # image halves the width: 12..36, y 24..40.
    images = [np.zeros((128, 192, 3), np.uint8), np.zeros((64, 48, 3), np.uint8)]
    big, narrow = predictor(images)
    assert model.seen_shapes == [(2, 64, 96, 3)]  # resized to the input size, one batch
    np.testing.assert_allclose(big, [[2, 0.9, 48, 48, 144, 80]], atol=1e-4)
    np.testing.assert_allclose(narrow, [[2, 0.9, 12, 24, 36, 40]], atol=1e-4)
    assert Predictor(model, config, confidence_thresh=0.95)(images[:1])[0].shape == (0, 6)


def test_draw_detections_marks_the_box_and_keeps_the_input():
    image = np.full((60, 80, 3), 30, np.uint8)
    drawn = draw_detections(image, np.array([[1, 0.8, 10, 20, 50, 40]]), ["bg", "thing"])
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert np.all(image == 30)  # the input is untouched
    assert np.any(drawn[20:41, 10] != 30)  # left edge of the box
    assert np.all(drawn[55:, 60:] == 30)  # far from the box and its label


def test_collect_inputs(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    for name in ("b.png", "a.jpg", "notes.txt"):
        (folder / name).write_bytes(b"x")
    (tmp_path / "clip.MP4").write_bytes(b"x")
    images, videos = collect_inputs([folder, tmp_path / "clip.MP4"])
    assert [p.name for p in images] == ["a.jpg", "b.png"]
    assert [p.name for p in videos] == ["clip.MP4"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no image"):
        collect_inputs([empty])
    with pytest.raises(ValueError, match="unsupported file type '.txt'"):
        collect_inputs([folder / "notes.txt"])
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        collect_inputs([tmp_path / "missing.jpg"])


@pytest.mark.parametrize("fps, expected", [(729.7671, 729.8), (100_000.0, 1000.0), (0.2, 1.0)])
def test_video_writer_accepts_any_measured_rate(tmp_path, fps, expected):
    """A camera's video is written at its measured rate. OpenCV could not open an MPEG-4 writer
    at 729.7671 FPS (the rate is a fraction with a 16-bit time base; the CLI test failed this way
    in CI) nor above ~65,000 FPS, so the rate is rounded to one decimal and kept in [1, 1000]."""
    import cv2
    import numpy as np

    from ssd_keras.predict import _open_writer

    frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(3)]
    writer = _open_writer(tmp_path / "fast.mp4", fps, frames)
    writer.release()
    capture = cv2.VideoCapture(str(tmp_path / "fast.mp4"))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(expected, abs=0.01)
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()
