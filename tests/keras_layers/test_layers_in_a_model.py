"""All four layers inside a small SSD-style model in inference mode: save, reload, decode."""

import keras
import numpy as np
import pytest

from keras_layers import AnchorBoxes, DecodeDetections, DecodeDetectionsFast, L2Normalization

N_CLASSES = 3
IMG = 32


def tiny_ssd(decode_layer):
    """Two predictor layers (16x16 and 8x8) on a 32x32 image, like ssd_300 in miniature."""
    keras.utils.set_random_seed(0)
    image = keras.Input((IMG, IMG, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(image)
    f1 = keras.layers.MaxPooling2D(name="pool1")(x)  # (16, 16, 8)
    f1 = L2Normalization(gamma_init=1, name="f1_norm")(f1)  # moderate logits: no ties at 1.0
    f2 = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv2")(f1)  # (8, 8, 8)
    confs, locs, priors = [], [], []
    for name, feature, scale, next_scale in (("f1", f1, 0.2, 0.5), ("f2", f2, 0.5, 0.8)):
        anchors = AnchorBoxes(
            img_height=IMG,
            img_width=IMG,
            this_scale=scale,
            next_scale=next_scale,
            aspect_ratios=[1.0, 2.0, 0.5],
            two_boxes_for_ar1=True,
            this_steps=None,
            this_offsets=None,
            clip_boxes=False,
            variances=[0.1, 0.1, 0.2, 0.2],
            coords="centroids",
            normalize_coords=True,
            name=f"{name}_priorbox",
        )
        n_boxes = anchors.n_boxes
        conf = keras.layers.Conv2D(n_boxes * (N_CLASSES + 1), 3, padding="same")(feature)
        loc = keras.layers.Conv2D(n_boxes * 4, 3, padding="same")(feature)
        confs.append(keras.layers.Reshape((-1, N_CLASSES + 1))(conf))
        locs.append(keras.layers.Reshape((-1, 4))(loc))
        priors.append(keras.layers.Reshape((-1, 8))(anchors(feature)))
    conf = keras.layers.Softmax()(keras.layers.Concatenate(axis=1)(confs))
    y_pred = keras.layers.Concatenate(axis=2, name="predictions")(
        [conf, keras.layers.Concatenate(axis=1)(locs), keras.layers.Concatenate(axis=1)(priors)]
    )
    return keras.Model(image, [y_pred, decode_layer(y_pred)])


@pytest.mark.parametrize(
    ("decode_class", "thresh"), [(DecodeDetections, 0.2), (DecodeDetectionsFast, 0.1)]
)
def test_model_saves_reloads_and_decodes_like_numpy(keras_reload, decode_class, thresh):
    decode = decode_class(
        confidence_thresh=thresh, iou_threshold=0.45, top_k=20, img_height=IMG, img_width=IMG
    )
    model = tiny_ssd(decode)
    images = np.random.default_rng(0).uniform(0, 1, size=(2, IMG, IMG, 3)).astype("float32")
    y_pred, detections = model.predict(images, verbose=0)
    # No tied confidences among the detections: with ties the order (and so the top-k cut) would
    # legitimately depend on the tie-break, and the numpy comparison below would not be defined.
    for b in range(2):
        confidences = detections[b, :, 1][detections[b, :, 1] > 0]
        assert len(np.unique(confidences)) == len(confidences)
    assert y_pred.shape == (2, (16 * 16 + 8 * 8) * 4, N_CLASSES + 1 + 12)
    assert detections.shape == (2, 20, 6)

    keras_reload(model, images, "tiny_ssd", expected=(y_pred, detections))

    decoder = pytest.importorskip("ssd_encoder_decoder.ssd_output_decoder")
    numpy_decode = {
        DecodeDetections: decoder.decode_detections,
        DecodeDetectionsFast: decoder.decode_detections_fast,
    }[decode_class]
    expected = numpy_decode(
        y_pred,
        confidence_thresh=thresh,
        iou_threshold=0.45,
        top_k=20,
        input_coords="centroids",
        normalize_coords=True,
        img_height=IMG,
        img_width=IMG,
    )
    for b in range(2):
        rows = detections[b][np.any(detections[b] != 0, axis=1)]
        assert len(rows) > 0
        expected_b = np.asarray(expected[b], np.float32).reshape(-1, 6)
        expected_b = expected_b[np.lexsort((expected_b[:, 0], -expected_b[:, 1]))]
        np.testing.assert_allclose(rows, expected_b, rtol=0, atol=1e-4)
