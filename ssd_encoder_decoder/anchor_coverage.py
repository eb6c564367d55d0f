"""How well a model's anchors cover a dataset's boxes, and anchors fitted to the data (numpy).

Coverage: for every ground-truth box, the best IoU with any anchor, and how many anchors reach
the encoder's ``pos_iou_threshold`` (a box whose best IoU is below it gets only the one anchor the
bipartite matching forces on it, usually a poor one). `anchor_coverage` computes both exactly,
over every anchor the model has.

Fitting: `fit_anchors` chooses ``scales`` and ``aspect_ratios_per_layer`` for fixed predictor
layers (feature map sizes, steps, offsets) and a fixed number of boxes per location per layer,
so the model's size and cost do not change. It starts from the given anchors and from a
data-driven guess (k-means on box shapes with 1 - IoU as the distance, clusters assigned to
layers by size), then runs a coordinate search in log space that maximises the fraction of
boxes whose best IoU reaches the threshold. A move is accepted only if no COCO size bucket
falls below the starting anchors' coverage, and the result is checked exactly at the end: the
fitted anchors never cover fewer boxes than the start, overall or in any size bucket.

All boxes are corners ``(xmin, ymin, xmax, ymax)`` in model-input pixels (see
`data_generator.dataset_inspection.collect_boxes`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from bounding_box_utils.bounding_box_utils import iou
from ssd_encoder_decoder.anchor_boxes import (
    PredictorLayerAnchors,
    anchor_box_sizes,
    as_hw_pair,
    generate_anchors,
)

# COCO size buckets (same as data_generator.dataset_inspection.SIZE_BUCKETS; the numpy packages
# do not import each other).
SIZE_BUCKETS = (("small", 0.0, 32.0**2), ("medium", 32.0**2, 96.0**2), ("large", 96.0**2, np.inf))
_LOG_STEPS = (0.4, 0.2, 0.1, 0.05, 0.025, 0.0125)
_DECIMALS = 4  # fitted values are rounded so anchors.json reads well; coverage is of the rounded


def model_anchors(
    img_height: int,
    img_width: int,
    predictor_sizes: Sequence[Sequence[int]],
    layers: Sequence[PredictorLayerAnchors],
    clip_boxes: bool = False,
) -> np.ndarray:
    """All anchors of a model, ``(n_anchors, 4)`` corners in input pixels, in output order."""
    per_layer = generate_anchors(
        img_height,
        img_width,
        predictor_sizes,
        layers,
        clip_boxes=clip_boxes,
        normalize_coords=False,
        coords="corners",
    )
    return np.concatenate([a.reshape(-1, 4) for a in per_layer])


@dataclasses.dataclass
class AnchorCoverage:
    """Per-box coverage of a dataset by a set of anchors.

    Attributes:
        best_iou: ``(n_boxes,)`` best IoU of each box with any anchor.
        n_anchors: ``(n_boxes,)`` anchors with IoU ``>= threshold`` with the box (what multi
            matching could give it, before boxes compete for anchors).
        threshold: the IoU threshold (the encoder's ``pos_iou_threshold``).
    """

    best_iou: np.ndarray
    n_anchors: np.ndarray
    threshold: float

    @property
    def matched(self) -> np.ndarray:
        """``(n_boxes,)`` True where the best IoU reaches the threshold."""
        return self.best_iou >= self.threshold

    def summary(self, class_ids=None, areas=None, classes=None, bins: int = 20) -> dict:
        """A JSON-able summary: fraction matched overall, per class and per size bucket,
        mean best IoU, the distribution of anchors per box and a best-IoU histogram.

        Args:
            class_ids: ``(n_boxes,)`` class of each box (for the per-class rows).
            areas: ``(n_boxes,)`` area in input pixels (for the size-bucket rows).
            classes: class names, background first.
            bins: best-IoU histogram bins over [0, 1].
        """
        result = {"threshold": float(self.threshold), **_fractions(self.best_iou, self.threshold)}
        counts = self.n_anchors
        result["anchors_per_box"] = {
            "mean": float(counts.mean()) if counts.size else None,
            "median": float(np.median(counts)) if counts.size else None,
            "zero": int((counts == 0).sum()),
        }
        histogram, edges = np.histogram(self.best_iou, bins=bins, range=(0.0, 1.0))
        result["best_iou_histogram"] = {"edges": edges.tolist(), "counts": histogram.tolist()}
        if class_ids is not None:
            class_ids = np.asarray(class_ids)
            result["per_class"] = {}
            for class_id in np.unique(class_ids):
                name = str(class_id)
                if classes is not None and 0 <= class_id < len(classes):
                    name = str(classes[class_id])
                mask = class_ids == class_id
                result["per_class"][name] = _fractions(self.best_iou[mask], self.threshold)
        if areas is not None:
            buckets = bucket_of(areas)
            result["per_size"] = {
                name: _fractions(self.best_iou[buckets == index], self.threshold)
                for index, (name, _, _) in enumerate(SIZE_BUCKETS)
            }
        return result


def _fractions(best_iou: np.ndarray, threshold: float) -> dict:
    n = int(best_iou.size)
    return {
        "boxes": n,
        "matched": int((best_iou >= threshold).sum()),
        "fraction_matched": float((best_iou >= threshold).mean()) if n else None,
        "mean_best_iou": float(best_iou.mean()) if n else None,
    }


def bucket_of(areas) -> np.ndarray:
    """Index into `SIZE_BUCKETS` of each area (input pixels)."""
    areas = np.asarray(areas, dtype=np.float64)
    return np.searchsorted([high for _, _, high in SIZE_BUCKETS[:-1]], areas, side="right")


def anchor_coverage(
    boxes: np.ndarray,
    box_image: np.ndarray,
    anchors: np.ndarray,
    threshold: float = 0.5,
    progress: bool = False,
) -> AnchorCoverage:
    """Exact coverage of ``boxes`` by ``anchors`` (every anchor is compared with every box).

    Args:
        boxes: ``(n_boxes, 4)`` ground-truth corners, input pixels.
        box_image: ``(n_boxes,)`` image index of each box (boxes are compared image by image only
            to bound the memory; anchors are the same for every image).
        anchors: ``(n_anchors, 4)`` corners, input pixels (`model_anchors`).
        threshold: the encoder's ``pos_iou_threshold``.
        progress: a tqdm progress bar over the images.

    Returns:
        An `AnchorCoverage`.

    Example:
        >>> anchors = np.array([[0.0, 0.0, 10.0, 10.0]])
        >>> anchor_coverage(np.array([[0.0, 0.0, 10.0, 10.0]]), np.array([0]), anchors).best_iou
        array([1.])
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    box_image = np.asarray(box_image).reshape(-1)
    best = np.zeros(len(boxes))
    counts = np.zeros(len(boxes), dtype=np.int64)
    images = np.unique(box_image)
    if progress:
        from tqdm import tqdm

        images = tqdm(images, desc="anchor coverage", unit="image")
    for image in images:
        rows = np.flatnonzero(box_image == image)
        overlaps = iou(boxes[rows], anchors, coords="corners", mode="outer_product")  # (k, A)
        best[rows] = overlaps.max(axis=1)
        counts[rows] = (overlaps >= threshold).sum(axis=1)
    return AnchorCoverage(best, counts, float(threshold))


def best_iou_by_shape(
    boxes: np.ndarray,
    img_height: int,
    img_width: int,
    predictor_sizes: Sequence[Sequence[int]],
    layers: Sequence[PredictorLayerAnchors],
) -> np.ndarray:
    """Best IoU of each box with the (unclipped) anchors, in O(boxes x anchor shapes).

    For one anchor shape the IoU with a box can only fall as the anchor's centre moves away from
    the box's centre along either axis (the overlap along each axis shrinks, the areas stay), so
    the best anchor of that shape sits at the grid centre nearest the box's centre in x and in y.
    This equals `anchor_coverage`'s best IoU for anchors with ``clip_boxes=False``.

    Returns:
        ``(n_boxes,)`` best IoU.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    bw = boxes[:, 2] - boxes[:, 0]
    bh = boxes[:, 3] - boxes[:, 1]
    best = np.zeros(len(boxes))
    for (fh, fw), layer in zip(predictor_sizes, layers):
        step_h, step_w = as_hw_pair(layer.this_steps, "steps", (img_height / fh, img_width / fw))
        offset_h, offset_w = as_hw_pair(layer.this_offsets, "offsets", (0.5, 0.5))
        ix = np.clip(np.round(cx / step_w - offset_w), 0, fw - 1)
        iy = np.clip(np.round(cy / step_h - offset_h), 0, fh - 1)
        dx = np.abs(cx - (offset_w + ix) * step_w)[:, None]  # (n, 1)
        dy = np.abs(cy - (offset_h + iy) * step_h)[:, None]
        sizes = anchor_box_sizes(
            img_height,
            img_width,
            layer.this_scale,
            layer.next_scale,
            layer.aspect_ratios,
            layer.two_boxes_for_ar1,
        )
        aw, ah = sizes[None, :, 0], sizes[None, :, 1]  # (1, S)
        # Overlap of two intervals of lengths a and b whose centres are d apart:
        # max(0, min(a, b, (a + b) / 2 - d)).
        inter_w = np.maximum(
            np.minimum(np.minimum(bw[:, None], aw), (bw[:, None] + aw) / 2 - dx), 0
        )
        inter_h = np.maximum(
            np.minimum(np.minimum(bh[:, None], ah), (bh[:, None] + ah) / 2 - dy), 0
        )
        inter = inter_w * inter_h
        union = (bw * bh)[:, None] + aw * ah - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            overlap = np.where(union > 0, inter / union, 0.0)
        best = np.maximum(best, overlap.max(axis=1))
    return best


# --------------------------------------------------------------------------- fitting


@dataclasses.dataclass
class AnchorFit:
    """What `fit_anchors` returns.

    Attributes:
        scales: ``n_layers + 1`` fitted scales (fractions of ``min(img_height, img_width)``).
        aspect_ratios_per_layer: fitted ratios of each layer (same count, 1.0 kept where it was).
        start_coverage: exact `AnchorCoverage` of the starting anchors.
        coverage: exact `AnchorCoverage` of the fitted anchors.
        improved: False when the start was kept (nothing found covered more boxes).
        evaluations: objective evaluations of the search.
    """

    scales: list
    aspect_ratios_per_layer: list
    start_coverage: AnchorCoverage
    coverage: AnchorCoverage
    improved: bool
    evaluations: int


def kmeans_iou(shapes: np.ndarray, k: int, rng=None, iterations: int = 100) -> np.ndarray:
    """k-means on box shapes ``(w, h)`` with the distance 1 - IoU of the boxes centred together.

    Args:
        shapes: ``(n, 2)`` widths and heights.
        k: number of clusters (at most the number of distinct shapes is returned).
        rng: ``None``, a seed or a ``numpy.random.Generator`` (k-means++ seeding).
        iterations: at most this many assignment/update rounds (centres are medians).

    Returns:
        ``(k', 2)`` cluster shapes sorted by area, ``k' <= k``.
    """
    rng = np.random.default_rng(rng)
    shapes = np.asarray(shapes, dtype=np.float64).reshape(-1, 2)
    shapes = shapes[(shapes > 0).all(axis=1)]
    if len(shapes) == 0:
        raise ValueError("kmeans_iou needs at least one box of positive width and height")
    distinct = np.unique(shapes, axis=0)
    k = int(min(k, len(distinct)))
    centres = [shapes[rng.integers(len(shapes))]]
    while len(centres) < k:  # k-means++: far (in 1 - IoU) shapes are likelier
        distance = 1.0 - _centred_iou(shapes, np.array(centres)).max(axis=1)
        weights = distance**2
        if weights.sum() <= 0:
            break
        centres.append(shapes[rng.choice(len(shapes), p=weights / weights.sum())])
    centres = np.array(centres)
    for _ in range(iterations):
        assignment = _centred_iou(shapes, centres).argmax(axis=1)
        updated = np.array(
            [
                np.median(shapes[assignment == j], axis=0) if (assignment == j).any() else c
                for j, c in enumerate(centres)
            ]
        )
        if np.allclose(updated, centres):
            break
        centres = updated
    return centres[np.argsort(centres[:, 0] * centres[:, 1])]


def _centred_iou(shapes: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """IoU of boxes with a common centre: ``(n, 2)`` x ``(k, 2)`` shapes -> ``(n, k)``."""
    inter = np.minimum(shapes[:, None, 0], centres[None, :, 0]) * np.minimum(
        shapes[:, None, 1], centres[None, :, 1]
    )
    union = (shapes[:, 0] * shapes[:, 1])[:, None] + (centres[:, 0] * centres[:, 1])[None] - inter
    return inter / union


def _with(layers: Sequence[PredictorLayerAnchors], scales, ratios) -> list[PredictorLayerAnchors]:
    return [
        dataclasses.replace(
            layer,
            this_scale=float(scales[i]),
            next_scale=float(scales[i + 1]),
            aspect_ratios=tuple(float(r) for r in ratios[i]),
        )
        for i, layer in enumerate(layers)
    ]


def _free_positions(layers) -> list[tuple[int, int]]:
    """(layer, position) of every ratio the search may change: all but a layer's 1.0."""
    return [
        (i, j)
        for i, layer in enumerate(layers)
        for j, ratio in enumerate(layer.aspect_ratios)
        if ratio != 1.0
    ]


def _data_guess(shapes, layers, size: float, rng) -> tuple[list, list] | None:
    """Scales and ratios from k-means clusters of the box shapes, smallest clusters first."""
    n_slots = [layer.n_boxes for layer in layers]
    try:
        clusters = kmeans_iou(shapes, sum(n_slots), rng)
    except ValueError:
        return None
    if len(clusters) < len(layers):
        return None
    # Spread the clusters over the layers in proportion to the layers' box budgets.
    bounds = np.round(np.cumsum([0] + n_slots) * len(clusters) / sum(n_slots)).astype(int)
    scales, ratios = [], []
    for i, layer in enumerate(layers):
        group = clusters[bounds[i] : max(bounds[i + 1], bounds[i] + 1)]
        side = np.exp(np.mean(np.log(np.sqrt(group[:, 0] * group[:, 1]))))
        scales.append(side / size)
        free = [r for r in layer.aspect_ratios if r != 1.0]
        # The most elongated clusters of the layer give its free ratios.
        group_ratios = group[:, 0] / group[:, 1]
        candidates = sorted(group_ratios, key=lambda r: -abs(np.log(r)))[: len(free)]
        candidates += free[len(candidates) :]
        candidates = [r if r != 1.0 else 1.0 + 10.0**-_DECIMALS for r in candidates]
        layer_ratios, it = [], iter(sorted(candidates))
        for ratio in layer.aspect_ratios:
            layer_ratios.append(1.0 if ratio == 1.0 else next(it))
        ratios.append(layer_ratios)
    last = layers[-1]
    scales.append(scales[-1] * last.next_scale / last.this_scale)
    scales = np.maximum.accumulate(scales)
    scales[:-1] = np.minimum(scales[:-1], 1.0)
    scales[-1] = max(scales[-1], scales[-2])
    return [round(float(v), _DECIMALS) for v in scales], ratios


class _Objective:
    """What `fit_anchors` maximises, on the boxes' shapes (`best_iou_by_shape`, fast).

    Candidates are points ``theta``: the log of every scale, then the log of every free aspect
    ratio (`_free_positions`). The key compares bucket floors first (no COCO size bucket may cover
    fewer boxes than the starting anchors), then the fraction of boxes matched, then, as a
    tie-break, the mean best IoU.
    """

    def __init__(self, boxes, img_height, img_width, predictor_sizes, layers, threshold, start):
        self.boxes = boxes
        self.buckets = bucket_of((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        self.img_height, self.img_width = img_height, img_width
        self.predictor_sizes = predictor_sizes
        self.layers = layers
        self.threshold = threshold
        self.start_scales, self.start_ratios = start
        self.free = _free_positions(layers)
        _, self.start_per_bucket, _ = self.measure(*start)

    def measure(self, scales, ratios):
        """``(fraction matched, matched per size bucket, mean best IoU)``."""
        best = best_iou_by_shape(
            self.boxes,
            self.img_height,
            self.img_width,
            self.predictor_sizes,
            _with(self.layers, scales, ratios),
        )
        hit = best >= self.threshold
        per_bucket = np.bincount(self.buckets, weights=hit, minlength=len(SIZE_BUCKETS))
        return hit.mean(), per_bucket, best.mean()

    def key(self, scales, ratios):
        fraction, per_bucket, mean_iou = self.measure(scales, ratios)
        deficit = np.maximum(self.start_per_bucket - per_bucket, 0).sum()
        return (-deficit, fraction + 1e-3 * mean_iou)

    def pack(self, scales, ratios) -> np.ndarray:
        return np.log(np.array(scales + [ratios[i][j] for i, j in self.free], dtype=np.float64))

    def unpack(self, theta):
        n_scales = len(self.start_scales)
        scales = [round(float(np.exp(v)), _DECIMALS) for v in theta[:n_scales]]
        ratios = [list(r) for r in self.start_ratios]
        for (i, j), v in zip(self.free, theta[n_scales:]):
            ratios[i][j] = round(float(np.exp(v)), _DECIMALS)
        return scales, ratios

    def allowed(self, scales, ratios) -> bool:
        # Finer feature maps keep the smaller anchors (the layout SSD's heads are built for);
        # a layer's own scale is at most 1 (`AnchorBoxes` refuses more), the last value only
        # sizes the last layer's second ratio-1 box.
        if min(scales) <= 0 or max(scales[:-1]) > 1.0:
            return False
        if any(a > b for a, b in zip(scales, scales[1:])):
            return False
        # The budget: a free ratio reaching exactly 1.0 would add a box (two_boxes_for_ar1).
        return all(ratios[i][j] != 1.0 for i, j in self.free)


def _coordinate_search(objective: _Objective, scales, ratios, max_evaluations, progress):
    """Greedy coordinate search in log space from ``(scales, ratios)``, step sizes `_LOG_STEPS`.

    Returns:
        ``((scales, ratios), key, evaluations)`` of the best point found.
    """
    theta = objective.pack(scales, ratios)
    best_key = objective.key(*objective.unpack(theta))
    evaluations = 1
    steps = _LOG_STEPS
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="anchor search", unit="step size")
    for step in steps:
        improved = True
        while improved and evaluations < max_evaluations:
            improved = False
            for index in range(len(theta)):
                for sign in (1.0, -1.0):
                    candidate = theta.copy()
                    candidate[index] += sign * step
                    values = objective.unpack(candidate)
                    if not objective.allowed(*values):
                        continue
                    evaluations += 1
                    candidate_key = objective.key(*values)
                    if candidate_key > best_key:
                        theta, best_key, improved = candidate, candidate_key, True
                        break
    return objective.unpack(theta), best_key, evaluations


def fit_anchors(
    boxes: np.ndarray,
    box_image: np.ndarray,
    img_height: int,
    img_width: int,
    predictor_sizes: Sequence[Sequence[int]],
    layers: Sequence[PredictorLayerAnchors],
    threshold: float = 0.5,
    clip_boxes: bool = False,
    seed: int = 0,
    max_evaluations: int = 4000,
    progress: bool = False,
) -> AnchorFit:
    """Scales and aspect ratios that cover more of ``boxes``, at the same boxes per location.

    Args:
        boxes: ``(n_boxes, 4)`` ground-truth corners in input pixels.
        box_image: ``(n_boxes,)`` image index of each box.
        img_height, img_width: model input size.
        predictor_sizes: ``(fh, fw)`` of each predictor layer.
        layers: the starting anchors (`resolve_anchor_config`); their steps, offsets,
            ``two_boxes_for_ar1`` and number of boxes per location are kept. Fitted scales
            stay in layer order and each layer's own scale at most 1.
        threshold: the encoder's ``pos_iou_threshold``.
        clip_boxes: whether the model clips its anchors (the search then works on unclipped
            anchors; the final check uses the model's own).
        seed: seed of the k-means seeding.
        max_evaluations: budget of the coordinate search, per starting point.
        progress: a tqdm progress bar over the search's step sizes.

    Returns:
        An `AnchorFit`; its coverage is never below the start's, overall or per size bucket.
    """
    layers = list(layers)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, box_image = boxes[valid], np.asarray(box_image).reshape(-1)[valid]
    if len(boxes) == 0:
        raise ValueError("fit_anchors needs at least one box of positive width and height")
    start_scales = [layer.this_scale for layer in layers] + [layers[-1].next_scale]
    start_ratios = [list(layer.aspect_ratios) for layer in layers]
    objective = _Objective(
        boxes,
        img_height,
        img_width,
        predictor_sizes,
        layers,
        threshold,
        (start_scales, start_ratios),
    )

    rng = np.random.default_rng(seed)
    shapes = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
    starts = [(start_scales, start_ratios)]
    guess = _data_guess(shapes, layers, float(min(img_height, img_width)), rng)
    if guess is not None:
        starts.append(guess)
    results, evaluations = [], 0
    for scales, ratios in starts:
        values, result_key, n = _coordinate_search(
            objective, list(scales), [list(r) for r in ratios], max_evaluations, progress
        )
        results.append((result_key, values))
        evaluations += n
    _, (scales, ratios) = max(results, key=lambda item: item[0])

    def exact(scales, ratios):
        anchors = model_anchors(
            img_height, img_width, predictor_sizes, _with(layers, scales, ratios), clip_boxes
        )
        return anchor_coverage(boxes, box_image, anchors, threshold)

    start_coverage = exact(start_scales, start_ratios)
    coverage = exact(scales, ratios)
    buckets = objective.buckets
    start_hits = np.bincount(buckets, weights=start_coverage.matched, minlength=len(SIZE_BUCKETS))
    hits = np.bincount(buckets, weights=coverage.matched, minlength=len(SIZE_BUCKETS))
    improved = bool((hits >= start_hits).all() and hits.sum() > start_hits.sum())
    if not improved:
        scales, ratios, coverage = start_scales, start_ratios, start_coverage
    return AnchorFit(
        scales=[float(s) for s in scales],
        aspect_ratios_per_layer=[[float(r) for r in layer] for layer in ratios],
        start_coverage=start_coverage,
        coverage=coverage,
        improved=improved,
        evaluations=evaluations,
    )
