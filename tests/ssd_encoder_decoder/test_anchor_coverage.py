"""Anchor coverage and anchors fitted to the data: known answers, exact vs fast, the search's
guarantee (never below its start), the fixed budget of boxes per location."""

from __future__ import annotations

import numpy as np
import pytest

from ssd_encoder_decoder.anchor_boxes import resolve_anchor_config
from ssd_encoder_decoder.anchor_coverage import (
    SIZE_BUCKETS,
    anchor_coverage,
    best_iou_by_shape,
    bucket_of,
    fit_anchors,
    kmeans_iou,
    model_anchors,
)

# A 100x100 input with one 10x10 predictor layer (step 10, centres 5, 15, ..., 95) and one
# anchor shape: scale 0.2 and ratio 1 without the second box -> 20x20 squares.
ONE_SHAPE = dict(img_height=100, img_width=100, predictor_sizes=[(10, 10)])


def _one_shape_layers(scale=0.2):
    return resolve_anchor_config(
        1, scales=[scale, scale], aspect_ratios_per_layer=[[1.0]], two_boxes_for_ar1=False
    )


def _ssd7_like(img_height=120, img_width=160):
    """4 predictor layers like SSD7's (strides 8, 16, 32, 64), its default anchors."""
    sizes = [(img_height // s, img_width // s) for s in (8, 16, 32, 64)]
    layers = resolve_anchor_config(
        4, scales=[0.08, 0.16, 0.32, 0.64, 0.96], aspect_ratios_global=[0.5, 1.0, 2.0]
    )
    return sizes, layers


def _random_boxes(rng, n, img_height, img_width, min_side, max_side):
    w = rng.uniform(min_side, max_side, n)
    h = w * np.exp(rng.normal(0, 0.4, n))
    cx = rng.uniform(w / 2, img_width - w / 2)
    cy = rng.uniform(0, img_height, n)
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return boxes, rng.integers(0, max(1, n // 5), n)


def test_box_equal_to_an_anchor_has_iou_one():
    layers = _one_shape_layers()
    anchors = model_anchors(100, 100, [(10, 10)], layers)
    box = np.array([[35.0, 45.0, 55.0, 65.0]])  # the anchor centred at (45, 55), 20x20
    assert any(np.allclose(box[0], a) for a in anchors)
    coverage = anchor_coverage(box, np.array([0]), anchors, threshold=0.5)
    assert coverage.best_iou[0] == pytest.approx(1.0)
    assert coverage.n_anchors[0] == 1  # its neighbours, 10 px away, overlap 1/3 < 0.5
    assert best_iou_by_shape(box, **ONE_SHAPE, layers=layers)[0] == pytest.approx(1.0)


def test_box_half_the_size_of_every_anchor():
    """A 10x10 box centred on an anchor centre inside the 20x20 anchor: IoU = 100 / 400 =
    0.25; centred between four anchor centres (offset 5, 5) it overlaps each anchor 10x10 too
    (the box spans 40..50, the anchor 35..55 contains it), so still 0.25."""
    layers = _one_shape_layers()
    anchors = model_anchors(100, 100, [(10, 10)], layers)
    boxes = np.array([[40.0, 50.0, 50.0, 60.0], [45.0, 55.0, 55.0, 65.0]])
    coverage = anchor_coverage(boxes, np.array([0, 1]), anchors, threshold=0.5)
    np.testing.assert_allclose(coverage.best_iou, [0.25, 0.25])
    assert coverage.matched.tolist() == [False, False]
    assert coverage.n_anchors.tolist() == [0, 0]
    np.testing.assert_allclose(best_iou_by_shape(boxes, **ONE_SHAPE, layers=layers), [0.25, 0.25])
    summary = coverage.summary(np.array([1, 1]), np.array([100.0, 100.0]), ["bg", "cell"])
    assert summary["fraction_matched"] == 0.0 and summary["per_class"]["cell"]["boxes"] == 2
    assert summary["per_size"]["small"]["boxes"] == 2 and summary["per_size"]["large"]["boxes"] == 0


def test_fast_best_iou_equals_exact_on_random_boxes():
    rng = np.random.default_rng(0)
    sizes, layers = _ssd7_like()
    boxes, images = _random_boxes(rng, 300, 120, 160, 4, 120)
    exact = anchor_coverage(boxes, images, model_anchors(120, 160, sizes, layers)).best_iou
    fast = best_iou_by_shape(boxes, 120, 160, sizes, layers)
    np.testing.assert_allclose(fast, exact, atol=1e-12)


def test_size_buckets_are_cocos():
    areas = np.array([0, 32**2 - 1, 32**2, 96**2 - 1, 96**2, 1e9])
    assert bucket_of(areas).tolist() == [0, 0, 1, 1, 2, 2]
    assert [name for name, _, _ in SIZE_BUCKETS] == ["small", "medium", "large"]


def test_kmeans_iou_finds_two_shape_clusters():
    rng = np.random.default_rng(1)
    small = rng.normal([10, 20], 0.5, (50, 2))
    large = rng.normal([80, 40], 1.0, (50, 2))
    centres = kmeans_iou(np.concatenate([small, large]), 2, rng=0)
    np.testing.assert_allclose(centres, [[10, 20], [80, 40]], atol=1.5)


@pytest.mark.parametrize("seed", range(4))
def test_fit_never_lowers_coverage_and_keeps_the_budget(seed):
    rng = np.random.default_rng(seed)
    sizes, layers = _ssd7_like()
    boxes, images = _random_boxes(rng, 120, 120, 160, 3 + 3 * seed, 60 + 20 * seed)
    fit = fit_anchors(boxes, images, 120, 160, sizes, layers, max_evaluations=400)
    buckets = bucket_of((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    for b in range(len(SIZE_BUCKETS)):
        in_bucket = buckets == b
        assert fit.coverage.matched[in_bucket].sum() >= fit.start_coverage.matched[in_bucket].sum()
    assert fit.coverage.matched.sum() >= fit.start_coverage.matched.sum()
    fitted = resolve_anchor_config(
        4, scales=fit.scales, aspect_ratios_per_layer=fit.aspect_ratios_per_layer
    )
    assert [layer.n_boxes for layer in fitted] == [layer.n_boxes for layer in layers]
    assert fit.scales == sorted(fit.scales)
    # The reported coverage is that of the returned settings.
    exact = anchor_coverage(boxes, images, model_anchors(120, 160, sizes, fitted))
    np.testing.assert_array_equal(exact.best_iou, fit.coverage.best_iou)


def test_fit_covers_boxes_the_defaults_miss():
    """Tall boxes (w 8-10 px, h = 4 w) have no anchor of their shape among SSD7's defaults
    (ratios 0.5, 1, 2): about a fifth are matched; fitted ratios and scales match most."""
    rng = np.random.default_rng(5)
    sizes, layers = _ssd7_like()
    w = rng.uniform(8, 10, 80)
    h = 4 * w
    cx, cy = rng.uniform(w / 2, 160 - w / 2), rng.uniform(h / 2, 120 - h / 2)
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    fit = fit_anchors(boxes, np.arange(80) // 5, 120, 160, sizes, layers, max_evaluations=600)
    assert fit.start_coverage.matched.mean() < 0.3
    assert fit.improved and fit.coverage.matched.mean() >= 0.8


def test_fit_keeps_each_layer_scale_at_most_one():
    """Boxes filling most of the image pull the scales up; a layer's own scale stays <= 1
    (AnchorBoxes refuses more), only the last value (the second ratio-1 box) may exceed it."""
    rng = np.random.default_rng(2)
    sizes, layers = _ssd7_like()
    w, h = rng.uniform(130, 160, 40), rng.uniform(100, 120, 40)
    boxes = np.stack([(160 - w) / 2, (120 - h) / 2, (160 + w) / 2, (120 + h) / 2], axis=1)
    fit = fit_anchors(boxes, np.arange(40), 120, 160, sizes, layers, max_evaluations=400)
    assert max(fit.scales[:-1]) <= 1.0
    assert fit.scales == sorted(fit.scales)
    assert fit.coverage.matched.sum() >= fit.start_coverage.matched.sum()


def test_fit_keeps_the_start_when_nothing_is_better():
    """Boxes equal to anchors are matched by the defaults already; the fit cannot do better
    overall, so it returns the start unchanged."""
    sizes, layers = _ssd7_like()
    anchors = model_anchors(120, 160, sizes, layers)
    boxes = anchors[[0, 500, 1000, 1400]]
    fit = fit_anchors(boxes, np.arange(4), 120, 160, sizes, layers, max_evaluations=200)
    assert not fit.improved
    assert fit.scales == [0.08, 0.16, 0.32, 0.64, 0.96]
    assert fit.coverage.matched.all()


def test_fit_rejects_no_boxes():
    sizes, layers = _ssd7_like()
    with pytest.raises(ValueError, match="at least one box"):
        fit_anchors(np.zeros((1, 4)), np.zeros(1), 120, 160, sizes, layers)


def test_coverage_and_dataset_statistics_import_no_keras(imports_leave_out):
    imports_leave_out(["ssd_encoder_decoder.anchor_coverage", "data_generator.dataset_inspection"])
