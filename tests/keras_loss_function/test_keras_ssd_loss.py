"""SSDLoss: golden parity, hand-checked values, hard negative mining, edge cases."""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_loss_function.keras_ssd_loss import (
    SSDLoss,
    focal_class_loss,
    hard_negative_mask,
    log_loss,
    smooth_l1_loss,
    ssd_loss_per_item,
)


def _np(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


GOLDEN_CASES = [
    "ssd300_default",
    "ssd300_ratio2_alpha0.5",
    "ssd7_default",
    "no_positives_n_neg_min_0",
    "no_positives_n_neg_min_100",
]


@pytest.mark.parametrize("case_name", GOLDEN_CASES)
def test_golden_loss_per_item_and_scalar(golden, case_name):
    fixture = golden("ssd_loss")
    case = next(c for c in fixture.meta["cases"] if c["name"] == case_name)
    y_true = fixture.npz[case["y_true_key"]]
    y_pred = fixture.npz[case["y_pred_key"]]
    loss = SSDLoss(**case["kwargs"])

    per_item = _np(loss.compute_loss(y_true, y_pred))
    np.testing.assert_allclose(per_item, case["loss_per_item"], rtol=1e-4, atol=1e-6)
    # The Keras reduction (mean over the batch) gives the scalar the original optimised.
    scalar = float(_np(loss(y_true, y_pred)))
    np.testing.assert_allclose(scalar, case["keras_loss"], rtol=1e-4, atol=1e-6)


def test_golden_hard_negative_count(golden):
    """The mask keeps exactly k = min(3 * n_pos, #non-zero negative losses) anchors (843 here)."""
    fixture = golden("ssd_loss")
    case = next(c for c in fixture.meta["cases"] if c["name"] == "ssd300_default")
    y_true = fixture.npz[case["y_true_key"]]
    y_pred = fixture.npz[case["y_pred_key"]]
    negative_losses = _np(log_loss(y_true[..., :-12], y_pred[..., :-12])) * y_true[..., 0]
    k = case["components"]["n_negative_keep"]
    mask = _np(hard_negative_mask(negative_losses, k))
    assert mask.sum() == k == 843
    # Batch-pooled (the original's bug 9, kept): the per-image counts are not 3 * positives each.
    kept_losses = negative_losses[mask == 1]
    assert kept_losses.min() > negative_losses[mask == 0].max()


def _hand_batch():
    """The hand-checked batch of the tests below: one image, four anchors, one object class
    (columns: background, class 1, 4 offsets, 8 anchor/variance values)."""
    zeros8 = [0.0] * 8
    y_true = np.array(
        [
            [
                [0, 1, 0.0, 0.0, 0.0, 0.0] + zeros8,  # positive
                [1, 0, 0.0, 0.0, 0.0, 0.0] + zeros8,  # negative
                [1, 0, 0.0, 0.0, 0.0, 0.0] + zeros8,  # negative
                [0, 0, 0.0, 0.0, 0.0, 0.0] + zeros8,  # neutral
            ]
        ],
        dtype="float32",
    )
    y_pred = np.array(
        [
            [
                [0.5, 0.5, 0.5, -2.0, 0.0, 0.0] + zeros8,
                [0.25, 0.75, 9.0, 9.0, 9.0, 9.0] + zeros8,
                [0.5, 0.5, 9.0, 9.0, 9.0, 9.0] + zeros8,
                [0.01, 0.99, 9.0, 9.0, 9.0, 9.0] + zeros8,
            ]
        ],
        dtype="float32",
    )
    return y_true, y_pred


def test_hand_checked_single_image():
    """One image, 4 anchors, 1 object class (2 scores). Numbers by hand:

    anchor 0: positive, p(class 1) = 0.5 -> class loss ln 2 = 0.693147; offsets off by
              (0.5, -2, 0, 0) -> smooth L1 = 0.5 * 0.25 + (2 - 0.5) = 1.625
    anchor 1: negative, p(background) = 0.25 -> loss ln 4 = 1.386294
    anchor 2: negative, p(background) = 0.5  -> loss ln 2 = 0.693147
    anchor 3: neutral (all-zero class vector) -> ignored even with a bad prediction
    n_pos = 1, neg_pos_ratio = 1 -> keep only the hardest negative (anchor 1).
    loss = (0.693147 + 1.386294 + alpha * 1.625) / 1 * batch(1), alpha = 2 -> 5.329442
    """
    y_true, y_pred = _hand_batch()
    loss = SSDLoss(neg_pos_ratio=1, alpha=2.0)
    expected = np.log(2) + np.log(4) + 2.0 * 1.625
    np.testing.assert_allclose(_np(loss.compute_loss(y_true, y_pred)), [expected], rtol=1e-6)
    np.testing.assert_allclose(_np(smooth_l1_loss(y_true[..., 2:6], y_pred[..., 2:6]))[0, 0], 1.625)


def _reference_mask(losses: np.ndarray, k: int) -> np.ndarray:
    """Brute force: sort by (-loss, flat index), keep the first k (tf.nn.top_k's tie order)."""
    flat = losses.reshape(-1)
    order = np.lexsort((np.arange(flat.size), -flat))
    mask = np.zeros(flat.size, dtype=np.float32)
    mask[order[:k]] = 1.0
    return mask.reshape(losses.shape)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 3),
    n=st.integers(1, 12),
    data=st.data(),
)
def test_hard_negative_mask_matches_brute_force_with_ties(seed, batch, n, data):
    rng = np.random.default_rng(seed)
    # Few distinct values so that ties at the cut are common.
    losses = rng.choice(np.array([0.0, 0.5, 1.0, 2.0], dtype=np.float32), size=(batch, n))
    k = data.draw(st.integers(0, int(np.count_nonzero(losses))))
    np.testing.assert_array_equal(_np(hard_negative_mask(losses, k)), _reference_mask(losses, k))


def test_all_background_batch_is_finite_and_zero_without_n_neg_min():
    rng = np.random.default_rng(0)
    n_anchors, n_scores = 50, 3
    y_true = np.zeros((2, n_anchors, n_scores + 12), dtype="float32")
    y_true[..., 0] = 1.0  # all background
    logits = rng.normal(size=(2, n_anchors, n_scores))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    y_pred = np.concatenate([probs, rng.normal(size=(2, n_anchors, 12))], -1).astype("float32")
    y_pred[0, 0, :n_scores] = [0.0, 1.0, 0.0]  # p(background) = 0 -> clipped log, not inf

    assert float(_np(SSDLoss()(y_true, y_pred))) == 0.0
    with_min = _np(SSDLoss(n_neg_min=10).compute_loss(y_true, y_pred))
    assert np.all(np.isfinite(with_min)) and with_min.sum() > 0
    # The anchor with p(background) = 0 is the hardest negative: -ln(1e-15) = 34.54.
    assert with_min[0] > 34.5


def test_gradient_is_finite_on_all_background_batch():
    """A tiny model trained one step on an all-background batch keeps finite weights."""
    n_anchors, n_scores = 6, 3
    inputs = keras.Input(shape=(n_anchors, 4))
    scores = keras.layers.Dense(n_scores, activation="softmax")(inputs)
    rest = keras.layers.Dense(12)(inputs)
    model = keras.Model(inputs, keras.layers.Concatenate()([scores, rest]))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=SSDLoss(n_neg_min=3))
    x = np.random.default_rng(1).normal(size=(2, n_anchors, 4)).astype("float32")
    y = np.zeros((2, n_anchors, n_scores + 12), dtype="float32")
    y[..., 0] = 1.0
    history = model.fit(x, y, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_per_item_function_equals_loss_class():
    rng = np.random.default_rng(3)
    y_true = np.zeros((2, 20, 15), dtype="float32")
    y_true[..., 0] = 1.0
    y_true[0, 3, :3] = [0, 0, 1]
    y_pred = rng.uniform(0.01, 1.0, size=(2, 20, 15)).astype("float32")
    np.testing.assert_allclose(
        _np(ssd_loss_per_item(y_true, y_pred, neg_pos_ratio=2, n_neg_min=1, alpha=0.5)),
        _np(SSDLoss(neg_pos_ratio=2, n_neg_min=1, alpha=0.5).compute_loss(y_true, y_pred)),
    )


def test_positional_arguments_keep_the_original_order():
    # The original's SSDLoss(neg_pos_ratio=3, n_neg_min=0, alpha=1.0) may be called by position.
    expected = ["neg_pos_ratio", "n_neg_min", "alpha"]
    assert list(inspect.signature(SSDLoss).parameters)[:3] == expected
    assert list(inspect.signature(ssd_loss_per_item).parameters)[2:5] == expected


def test_config_round_trip_and_serialization():
    loss = SSDLoss(neg_pos_ratio=2, n_neg_min=5, alpha=0.5)
    config = loss.get_config()
    assert {k: config[k] for k in ("neg_pos_ratio", "n_neg_min", "alpha")} == {
        "neg_pos_ratio": 2,
        "n_neg_min": 5,
        "alpha": 0.5,
    }
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, SSDLoss) and clone.get_config() == config


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"neg_pos_ratio": -1}, "neg_pos_ratio"),
        ({"n_neg_min": 2.5}, "n_neg_min"),
        ({"alpha": -0.1}, "alpha"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SSDLoss(**kwargs)


def test_focal_loss_hand_computed_batch():
    """One image, 4 anchors, 1 object class; gamma 2, focal_alpha 0.25. By hand:

    anchor 0: positive, p_t = 0.5  -> 0.25 * 0.5**2 * ln 2 = 0.0433217; smooth L1 1.625
    anchor 1: background, p_t = 0.25 -> 0.75 * 0.75**2 * ln 4 = 0.5848429
    anchor 2: background, p_t = 0.5  -> 0.75 * 0.5**2 * ln 2 = 0.1299651
    anchor 3: neutral -> 0 (no mining: every negative counts, none is dropped)
    loss = (0.0433217 + 0.5848429 + 0.1299651 + alpha * 1.625) / n_pos 1, alpha = 2
    """
    y_true, y_pred = _hand_batch()
    expected = (
        0.25 * 0.25 * np.log(2) + 0.75 * 0.5625 * np.log(4) + 0.75 * 0.25 * np.log(2) + 2 * 1.625
    )
    loss = SSDLoss(alpha=2.0, classification="focal", gamma=2.0, focal_alpha=0.25)
    np.testing.assert_allclose(_np(loss.compute_loss(y_true, y_pred)), [expected], rtol=1e-6)
    per_anchor = _np(focal_class_loss(y_true[..., :2], y_pred[..., :2], 2.0, 0.25))
    np.testing.assert_allclose(
        per_anchor[0],
        [0.25 * 0.25 * np.log(2), 0.75 * 0.5625 * np.log(4), 0.75 * 0.25 * np.log(2), 0.0],
        rtol=1e-6,
    )
    # gamma 0, focal_alpha 0.5: half the log loss of every non-neutral anchor.
    plain = _np(focal_class_loss(y_true[..., :2], y_pred[..., :2], 0.0, 0.5))
    np.testing.assert_allclose(plain[0], 0.5 * np.log([2, 4, 2, 1]) * [1, 1, 1, 0], rtol=1e-6)


def test_softmax_classification_is_the_original_loss(golden):
    """classification='softmax' (the default) gives the golden values of the original."""
    fixture = golden("ssd_loss")
    for case in fixture.meta["cases"]:
        y_true = fixture.npz[case["y_true_key"]]
        y_pred = fixture.npz[case["y_pred_key"]]
        loss = SSDLoss(**case["kwargs"], classification="softmax")
        np.testing.assert_allclose(
            _np(loss.compute_loss(y_true, y_pred)), case["loss_per_item"], rtol=1e-4, atol=1e-6
        )


def test_focal_loss_config_round_trip_and_checks():
    loss = SSDLoss(classification="focal", gamma=1.5, focal_alpha=0.4)
    restored = SSDLoss.from_config(loss.get_config())
    assert (restored.classification, restored.gamma, restored.focal_alpha) == ("focal", 1.5, 0.4)
    assert SSDLoss().classification == "softmax"
    with pytest.raises(ValueError, match="classification"):
        SSDLoss(classification="sigmoid")
    with pytest.raises(ValueError, match="gamma"):
        SSDLoss(gamma=-1)
    with pytest.raises(ValueError, match="focal_alpha"):
        SSDLoss(focal_alpha=1.5)
