"""SSD7 learns: a 40-step fit on a small generated batch lowers the SSD loss; no NaN anywhere."""

from __future__ import annotations

import keras
import numpy as np

from bounding_box_utils.bounding_box_utils import iou
from keras_loss_function.keras_ssd_loss import SSDLoss
from models.keras_ssd7 import build_model

IMAGE_SIZE = (96, 128, 3)
N_CLASSES = 2


def _model():
    return build_model(
        image_size=IMAGE_SIZE,
        n_classes=N_CLASSES,
        l2_regularization=0.0005,
        scales=[0.08, 0.16, 0.32, 0.64, 0.96],
        aspect_ratios_global=[0.5, 1.0, 2.0],
        variances=[1.0, 1.0, 1.0, 1.0],
        normalize_coords=True,
        subtract_mean=127.5,
        divide_by_stddev=127.5,
    )


def _batch(anchors: np.ndarray, rng: np.random.Generator, n_images: int = 4):
    """Images with one coloured rectangle each, and targets encoded by hand (centroid offsets).

    ``anchors`` is ``(n_anchors, 4)`` normalised ``(cx, cy, w, h)`` taken from the model output.
    An anchor is positive when its IoU with the box is >= 0.5 (and the best anchor always is);
    everything else is background. Offsets: ``((cx - cx_a) / w_a, (cy - cy_a) / h_a,
    ln(w / w_a), ln(h / h_a))`` divided by the variances (all 1 here).
    """
    height, width = IMAGE_SIZE[:2]
    images = np.full((n_images,) + IMAGE_SIZE, 40, dtype="float32")
    y_true = np.zeros((n_images, len(anchors), N_CLASSES + 1 + 12), dtype="float32")
    y_true[:, :, -8:-4] = anchors
    y_true[:, :, -4:] = 1.0
    y_true[:, :, 0] = 1.0
    colours = {1: (230, 40, 40), 2: (40, 40, 230)}
    for i in range(n_images):
        class_id = 1 + i % N_CLASSES
        w, h = rng.integers(20, 50), rng.integers(20, 50)
        x0, y0 = rng.integers(0, width - w), rng.integers(0, height - h)
        images[i, y0 : y0 + h, x0 : x0 + w] = colours[class_id]
        box = np.array([[(x0 + w / 2) / width, (y0 + h / 2) / height, w / width, h / height]])
        overlaps = iou(anchors, box, coords="centroids", mode="outer_product")[:, 0]
        positive = overlaps >= 0.5
        positive[np.argmax(overlaps)] = True
        y_true[i, positive, : N_CLASSES + 1] = 0.0
        y_true[i, positive, class_id] = 1.0
        a = anchors[positive]
        y_true[i, positive, -12] = (box[0, 0] - a[:, 0]) / a[:, 2]
        y_true[i, positive, -11] = (box[0, 1] - a[:, 1]) / a[:, 3]
        y_true[i, positive, -10] = np.log(box[0, 2] / a[:, 2])
        y_true[i, positive, -9] = np.log(box[0, 3] / a[:, 3])
    return images, y_true


def test_40_step_fit_lowers_the_loss():
    keras.utils.set_random_seed(0)
    model = _model()
    anchors = np.asarray(model.predict(np.zeros((1,) + IMAGE_SIZE, "float32"), verbose=0))[0]
    images, y_true = _batch(anchors[:, -8:-4], np.random.default_rng(0))
    assert y_true[..., 1 : N_CLASSES + 1].sum() >= 4  # at least one positive per image

    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=SSDLoss())
    history = model.fit(images, y_true, batch_size=4, epochs=40, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 40 and np.all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses


def test_fit_on_all_background_batch_has_no_nan():
    keras.utils.set_random_seed(1)
    model = _model()
    n_anchors = model.output.shape[1]
    images = np.random.default_rng(1).uniform(0, 255, (4,) + IMAGE_SIZE).astype("float32")
    y_true = np.zeros((4, n_anchors, N_CLASSES + 1 + 12), dtype="float32")
    y_true[..., 0] = 1.0
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=SSDLoss(n_neg_min=20))
    history = model.fit(images, y_true, batch_size=4, epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    assert np.all(np.isfinite(np.asarray(model.predict(images, verbose=0))))
