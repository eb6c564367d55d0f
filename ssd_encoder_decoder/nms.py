"""Greedy non-maximum suppression of boxes (numpy): the engine behind the numpy decoders.

- `greedy_nms`: class-agnostic greedy NMS of already decoded detections (the original's public
  function; also importable from `ssd_output_decoder`).
- `greedy_nms_rows`: the same for one image's ``(k, 6)`` rows (`decode_detections_fast` uses it).
- `grouped_greedy_nms`: per-class greedy NMS where all classes share one image's anchor boxes
  (`decode_detections` uses it).
- `greedy_nms_most_confident`: runs an NMS on the most confident candidates first when only the
  ``top_k`` best survivors are wanted.

Greedy NMS here gives exactly the original's result: boxes are visited by descending confidence
(ties: lowest index first), a box is dropped when its IoU with an already kept box is ``>
iou_threshold`` (so an IoU equal to the threshold is kept), and the IoUs come from
`bounding_box_utils.iou` in the input's float type, as in the original. It is not a python loop
over boxes, though: the pairs of boxes that could overlap by more than the threshold are found with
a sort-and-search over size buckets (IoU > t needs both side ratios > t and centres closer than
``(w1 + w2) / 2 - t * max(w1, w2)``), their IoUs are computed in one vectorised call, and the greedy
selection on that sparse graph is resolved in rounds (a box is kept once every higher-ranked
neighbour is decided and none is kept). The geometry is shared by all classes of an image, since
the classes of one anchor share its box. When only the ``top_k`` best detections are wanted, NMS is
first solved on the most confident candidates only (exact, see `greedy_nms_most_confident`): with
an untrained model, where nearly every anchor is a candidate of every class, that is what keeps
decoding fast.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bounding_box_utils.bounding_box_utils import border_offset, check_coords, iou, to_corners

__all__ = [
    "greedy_nms",
    "greedy_nms_most_confident",
    "greedy_nms_rows",
    "greedy_select",
    "grouped_greedy_nms",
    "suppression_pairs",
]


def greedy_nms(
    y_pred_decoded,
    iou_threshold: float = 0.45,
    coords: str = "corners",
    border_pixels: str = "half",
) -> list[np.ndarray]:
    """Class-agnostic greedy NMS of decoded detections, per image.

    Repeatedly keeps the most confident remaining row (ties: the earliest) and drops every
    remaining row whose IoU with it is ``> iou_threshold``.

    Args:
        y_pred_decoded: per image, a ``(k, 6)`` array of rows ``[class_id, confidence, box]``
            with the box in ``coords`` format.
        iou_threshold: suppression threshold (an IoU equal to it is kept).
        coords: the box format: ``'corners'``, ``'centroids'`` or ``'minmax'``.
        border_pixels: ``'half'``, ``'include'`` or ``'exclude'``.

    Returns:
        Per image, the kept rows in the order kept (descending confidence), dtype of the input.
        An empty image gives ``(0, 6)`` (the original gave ``(0,)``).
    """
    check_coords(coords)
    border_offset(border_pixels)
    results = []
    for i, rows in enumerate(y_pred_decoded):
        rows = np.asarray(rows)
        if not np.issubdtype(rows.dtype, np.floating):
            rows = rows.astype(np.float64)
        if rows.size == 0:
            results.append(np.zeros((0, 6), dtype=rows.dtype))
            continue
        if rows.ndim != 2 or rows.shape[1] != 6:
            raise ValueError(
                f"y_pred_decoded[{i}] must have shape (k, 6) = [class_id, confidence, box], "
                f"got {rows.shape}"
            )
        results.append(greedy_nms_rows(rows, iou_threshold, border_pixels, coords))
    return results


def greedy_nms_rows(
    rows: np.ndarray,
    iou_threshold: float,
    border_pixels: str,
    coords: str = "corners",
    top_k="all",
) -> np.ndarray:
    """Class-agnostic greedy NMS of ``(k, 6)`` rows; the kept rows by descending confidence.

    With an integer ``top_k`` the result holds (at least) the ``top_k`` most confident survivors
    exactly; less confident survivors may be left out.
    """
    if len(rows) == 0:
        return rows.reshape(0, 6)
    order = np.argsort(-rows[:, 1], kind="stable")  # the original's argmax order
    rows = rows[order]
    if _suppresses_everything(iou_threshold):
        return rows[:1]
    boxes = to_corners(rows[:, 2:], coords, border_pixels)  # as `iou` converts them

    def solve(subset):
        n = int(subset.sum())
        pairs = suppression_pairs(boxes[subset], iou_threshold, border_pixels)
        return greedy_select(np.arange(n), *pairs, n)

    return rows[greedy_nms_most_confident(solve, rows[:, 1], top_k)]


def _suppresses_everything(iou_threshold) -> bool:
    """IoUs are >= 0, so a negative (or NaN) threshold makes every pair suppress each other."""
    return not 0.0 <= iou_threshold


def greedy_nms_most_confident(solve, conf: np.ndarray, top_k) -> np.ndarray:
    """Greedy NMS of many candidates when only the ``top_k`` most confident survivors count.

    Whether a candidate survives depends only on the candidates of higher rank (higher
    confidence, or equal confidence and lower index), so the result on all candidates with
    confidence ``>= c`` is the full result restricted to them. Solving for the most confident
    ``4 * top_k`` (at least 1000) candidates first, and for 4x more until ``top_k`` survive,
    gives exactly the full result's ``top_k`` best. With an untrained model (every anchor a
    candidate of every class) this is what makes decoding fast.

    Args:
        solve: ``solve(subset_mask) -> keep mask over the subset`` (greedy NMS of that subset).
        conf: ``(n,)`` confidences of the candidates.
        top_k: an int, or ``'all'``.

    Returns:
        ``(n,)`` bool: the candidates that survive NMS and whose survival is decided (all
        survivors among the evaluated subset; candidates outside it are False, and the caller's
        top-k selection never needs them).
    """
    n = len(conf)
    keep = np.zeros(n, dtype=bool)
    size = n if top_k == "all" else max(4 * int(top_k), 1000)
    while True:
        if size >= n:
            keep[:] = solve(np.ones(n, dtype=bool))
            return keep
        threshold = np.partition(conf, n - size)[n - size]  # the size-th largest
        subset = conf >= threshold  # all ties included: closed under "higher rank"
        subset_keep = solve(subset)
        if subset_keep.sum() >= top_k:
            keep[subset] = subset_keep
            return keep
        size *= 4


def grouped_greedy_nms(
    boxes: np.ndarray,
    anchor_idx: np.ndarray,
    class_idx: np.ndarray,
    iou_threshold: float,
    border_pixels: str,
) -> np.ndarray:
    """Per-class greedy NMS where all classes share the anchors' boxes.

    Args:
        boxes: ``(N, 4)`` corners of all anchors of one image.
        anchor_idx, class_idx: the candidate (anchor, class) nodes, sorted by class, then
            descending confidence, then anchor (the visiting order).

    Returns:
        ``(n_nodes,)`` bool: which nodes the greedy NMS of their class keeps.
    """
    n_nodes = len(anchor_idx)
    if n_nodes == 0:
        return np.zeros(0, dtype=bool)
    if _suppresses_everything(iou_threshold):
        keep = np.zeros(n_nodes, dtype=bool)
        keep[np.unique(class_idx, return_index=True)[1]] = True  # the first node of each class
        return keep
    n_classes = int(class_idx.max()) + 1
    candidates = np.zeros((len(boxes), n_classes), dtype=bool)
    candidates[anchor_idx, class_idx] = True
    active = np.nonzero(candidates.any(axis=1))[0]
    first, second = suppression_pairs(boxes[active], iou_threshold, border_pixels)
    first, second = active[first], active[second]  # anchor pairs that suppress each other
    node_of = np.full(candidates.shape, -1, dtype=np.int64)
    node_of[anchor_idx, class_idx] = np.arange(n_nodes)
    # One edge per class in which both anchors are candidates.
    edge, cls = np.nonzero(candidates[first] & candidates[second])
    u = node_of[first[edge], cls]
    v = node_of[second[edge], cls]
    return greedy_select(np.arange(n_nodes), u, v, n_nodes)


def greedy_select(rank: np.ndarray, u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    """Greedy maximal independent set in the order of ``rank`` (lower rank is visited first).

    Node ``x`` is kept iff no kept node of lower rank shares an edge with it: exactly the result
    of visiting the nodes by rank and dropping the neighbours of each kept one. Resolved in
    rounds: a node is dropped as soon as a higher-ranked neighbour is kept and kept as soon as all
    its higher-ranked neighbours are dropped; every round decides at least the best undecided
    node, and the edge list shrinks as nodes are decided.
    """
    keep = np.ones(n, dtype=bool)
    if len(u) == 0:
        return keep
    src = np.where(rank[u] < rank[v], u, v)  # the higher-ranked end of each edge
    dst = np.where(rank[u] < rank[v], v, u)
    state = np.zeros(n, dtype=np.int8)  # 0 undecided, 1 kept, 2 dropped
    has_pred = np.zeros(n, dtype=bool)
    has_pred[dst] = True
    state[~has_pred] = 1
    while len(src):
        s_state = state[src]
        state[dst[s_state == 1]] = 2
        live = (state[src] != 2) & (state[dst] == 0)
        src, dst = src[live], dst[live]
        blocked = np.zeros(n, dtype=bool)
        blocked[dst] = True
        # Undecided nodes whose predecessors are all dropped (no live edge into them) are kept.
        newly_kept = (state == 0) & ~blocked
        state[newly_kept] = 1
        if not newly_kept.any() and not (s_state == 1).any():
            break  # cannot happen for a DAG; guards against an infinite loop
    keep = state == 1
    return keep


def suppression_pairs(
    corners: np.ndarray, iou_threshold: float, border_pixels: str
) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``i < j`` of boxes that suppress each other: ``not iou(i, j) <= iou_threshold``.

    Args:
        corners: ``(M, 4)`` boxes ``[xmin, ymin, xmax, ymax]`` (float; the IoUs use this dtype).
        iou_threshold: the NMS threshold.
        border_pixels: ``'half'``, ``'include'`` or ``'exclude'``.

    Returns:
        Two int64 arrays ``(i, j)`` of equal length.
    """
    m = len(corners)
    empty = np.zeros(0, dtype=np.int64)
    if m < 2:
        return empty, empty
    d = border_offset(border_pixels)
    corners64 = corners.astype(np.float64)
    w = corners64[:, 2] - corners64[:, 0] + d
    h = corners64[:, 3] - corners64[:, 1] + d
    regular = np.isfinite(corners64).all(axis=1) & (w > 0) & (h > 0)
    # IoU > t > 0 needs overlapping boxes of similar size; a threshold >= 1 can only be exceeded
    # through rounding, by near-identical boxes, so a bound slightly below 1 finds those.
    t = min(float(iou_threshold), 0.999)
    if t <= 0 or not regular.all():
        # Rare cases (threshold 0, zero-size or non-finite boxes): the bounds below do not
        # hold, so every pair involving such a box is tested.
        odd = np.arange(m) if t <= 0 else np.nonzero(~regular)[0]
        pairs = [_all_pairs_with(corners, odd, iou_threshold, border_pixels)]
        ok = np.nonzero(regular)[0]
        if t > 0 and len(ok) >= 2:
            i, j = _candidate_pairs(corners64[ok], w[ok], h[ok], t)
            pairs.append(_filter_pairs(corners, ok[i], ok[j], iou_threshold, border_pixels))
        i = np.concatenate([p[0] for p in pairs])
        j = np.concatenate([p[1] for p in pairs])
        return i, j
    i, j = _candidate_pairs(corners64, w, h, t)
    return _filter_pairs(corners, i, j, iou_threshold, border_pixels)


def _filter_pairs(corners, i, j, iou_threshold, border_pixels):
    if len(i) == 0:
        return i, j
    ious = iou(corners[i], corners[j], "corners", "element-wise", border_pixels)
    suppress = ~(ious <= iou_threshold)
    return i[suppress], j[suppress]


def _all_pairs_with(corners, odd, iou_threshold, border_pixels):
    """Pairs ``i < j`` with at least one end in ``odd``, tested exhaustively."""
    m = len(corners)
    others = np.arange(m)
    i_all, j_all = [], []
    is_odd = np.zeros(m, dtype=bool)
    is_odd[odd] = True
    chunk = max(1, 2_000_000 // max(m, 1))
    for start in range(0, len(odd), chunk):
        rows = odd[start : start + chunk]
        i = np.repeat(rows, m)
        j = np.tile(others, len(rows))
        # Keep each unordered pair once: i < j, or j is not odd (then only found from i).
        sel = (i != j) & ((i < j) | ~is_odd[j])
        i, j = i[sel], j[sel]
        i, j = _filter_pairs(corners, i, j, iou_threshold, border_pixels)
        i_all.append(np.minimum(i, j))
        j_all.append(np.maximum(i, j))
    return np.concatenate(i_all), np.concatenate(j_all)


_SUB_BUCKETS = 3  # size buckets per factor 1 / t; finer buckets give tighter search windows


def _candidate_pairs(corners, w, h, t):
    """A superset of the pairs ``i < j`` of regular boxes (``w, h > 0``) with IoU > t.

    Uses two necessary conditions of IoU > t (0 < t < 1), with the side lengths including the
    border term: (a) ``t < w_i / w_j < 1 / t`` and the same for the heights, since the IoU is at
    most the ratio of the smaller to the larger side; (b) ``|cx_i - cx_j| < (w_i + w_j) / 2 -
    t * max(w_i, w_j)`` and the same in y, since the overlap width must exceed ``t`` times the
    larger width. Boxes are bucketed by ``(log w, log h)`` (``_SUB_BUCKETS`` buckets per factor
    ``1 / t``, so partners are at most that many buckets apart), each bucket is cut into
    horizontal bands and sorted by ``cx``; every box then searches the bands of the neighbouring
    buckets (those with a larger id, and its own) for its x-window.
    """
    cx = (corners[:, 0] + corners[:, 2]) / 2.0
    cy = (corners[:, 1] + corners[:, 3]) / 2.0
    buckets = _size_buckets(w, h, t)
    index = _band_index(cx, cy, buckets, t)
    q_box, q_bucket = _neighbour_queries(buckets)
    q_box, q_bucket, rx, ry = _query_windows(cx, cy, w, h, t, buckets, q_box, q_bucket)
    i, j = _search_bands(cx, cy, index, q_box, q_bucket, rx, ry)
    # Same bucket: found from both ends, keep i < j. Other buckets: found once.
    same = buckets.bucket[i] == buckets.bucket[j]
    keep = (i < j) | ~same
    i, j = i[keep], j[keep]
    # The exact per-pair windows (b), with slack for the rounding of the IoUs computed later.
    wi, wj, hi, hj = w[i], w[j], h[i], h[j]
    keep = np.abs(cx[i] - cx[j]) < (wi + wj) * (0.5 + 1e-5) - t * np.maximum(wi, wj)
    keep &= np.abs(cy[i] - cy[j]) < (hi + hj) * (0.5 + 1e-5) - t * np.maximum(hi, hj)
    i, j = i[keep], j[keep]
    return np.minimum(i, j), np.maximum(i, j)


class _SizeBuckets(NamedTuple):
    """Boxes bucketed by ``(log w, log h)``, and the size range of each bucket."""

    bw: np.ndarray  # (M,) width bucket of each box, from 0
    bh: np.ndarray  # (M,) height bucket of each box, from 0
    n_bw: int
    n_bh: int
    bucket: np.ndarray  # (M,) bucket id, bw * n_bh + bh
    w_min: np.ndarray  # (n_buckets,) smallest width in the bucket (inf if empty)
    w_max: np.ndarray  # (n_buckets,)
    h_min: np.ndarray  # (n_buckets,)
    h_max: np.ndarray  # (n_buckets,)
    occupied: np.ndarray  # (n_buckets,) bool


def _size_buckets(w, h, t) -> _SizeBuckets:
    """``_SUB_BUCKETS`` buckets per factor ``1 / t`` of width and of height (at most ~64 each)."""
    log_w, log_h = np.log(w), np.log(h)
    step = (np.log(1.0 / t) * (1 + 1e-9) + 1e-12) / _SUB_BUCKETS
    # Wider buckets are always safe (partners stay at most k apart); at most ~64 per axis.
    spread = max(np.ptp(log_w), np.ptp(log_h))
    step = max(step, spread / 64.0)
    bw = np.floor(log_w / step).astype(np.int64)
    bh = np.floor(log_h / step).astype(np.int64)
    bw -= bw.min()
    bh -= bh.min()
    n_bw, n_bh = int(bw.max()) + 1, int(bh.max()) + 1
    bucket = bw * n_bh + bh  # (M,)
    n_buckets = n_bw * n_bh
    # Per-bucket size ranges (tighter than the bucket edges).
    w_min = np.full(n_buckets, np.inf)
    w_max = np.zeros(n_buckets)
    h_min = np.full(n_buckets, np.inf)
    h_max = np.zeros(n_buckets)
    np.minimum.at(w_min, bucket, w)
    np.maximum.at(w_max, bucket, w)
    np.minimum.at(h_min, bucket, h)
    np.maximum.at(h_max, bucket, h)
    return _SizeBuckets(bw, bh, n_bw, n_bh, bucket, w_min, w_max, h_min, h_max, np.isfinite(w_min))


class _BandIndex(NamedTuple):
    """Boxes sorted by (bucket, horizontal band, cx) under one searchable key."""

    x0: float  # smallest cx
    y0: float  # smallest cy
    band_h: np.ndarray  # (n_buckets,) band height of each bucket
    n_bands: int
    order: np.ndarray  # (M,) box indices in key order
    groups: np.ndarray  # sorted unique (bucket, band) group ids
    keys: np.ndarray  # (M,) sorted keys: group rank * span + (cx - x0)
    span: float  # larger than the x-extent plus any search window
    rank_of: np.ndarray | None  # group id -> rank (-1 if empty), when small enough


def _band_index(cx, cy, buckets: _SizeBuckets, t) -> _BandIndex:
    """Cuts each bucket into bands and sorts the boxes by (group, cx) into one key array."""
    # Bands about as high as the y-window of two equal boxes of the bucket's smallest height.
    x0, y0 = cx.min(), cy.min()
    band_h = np.where(buckets.occupied, np.maximum((1.0 - t) * buckets.h_min, 1e-12), 1.0)
    band = np.floor((cy - y0) / band_h[buckets.bucket]).astype(np.int64)
    n_bands = int(band.max()) + 1
    group = buckets.bucket * n_bands + band  # (M,) int64
    span = (cx.max() - x0) + 2.0 * float(np.max(buckets.w_max)) + 1.0  # > x-extent + any window
    order = np.lexsort((cx, group))
    group_sorted = group[order]
    is_first = np.ones(len(group_sorted), dtype=bool)
    is_first[1:] = group_sorted[1:] != group_sorted[:-1]
    groups = group_sorted[is_first]  # sorted unique group ids
    keys = (np.cumsum(is_first) - 1) * span + (cx[order] - x0)
    n_codes = len(buckets.w_min) * n_bands
    if n_codes <= 4_000_000:  # dense lookup table: group id -> rank (-1 if empty)
        rank_of = np.full(n_codes, -1, dtype=np.int64)
        rank_of[groups] = np.arange(len(groups))
    else:
        rank_of = None
    return _BandIndex(x0, y0, band_h, n_bands, order, groups, keys, span, rank_of)


def _neighbour_queries(buckets: _SizeBuckets) -> tuple[np.ndarray, np.ndarray]:
    """Queries ``(box, neighbour bucket)``: every occupied bucket with an id ``>=`` the box's
    own within ``_SUB_BUCKETS`` buckets in each direction."""
    k = _SUB_BUCKETS
    q_box, q_bucket = [], []
    for dbw in range(0, k + 1):
        for dbh in range(-k, k + 1):
            if dbw == 0 and dbh < 0:
                continue
            nbw, nbh = buckets.bw + dbw, buckets.bh + dbh
            ok = (nbw < buckets.n_bw) & (nbh >= 0) & (nbh < buckets.n_bh)
            nb = np.where(ok, nbw * buckets.n_bh + nbh, 0)
            ok &= buckets.occupied[nb]
            q_box.append(np.nonzero(ok)[0])
            q_bucket.append(nb[ok])
    return np.concatenate(q_box), np.concatenate(q_bucket)


def _query_windows(cx, cy, w, h, t, buckets: _SizeBuckets, q_box, q_bucket):
    """The x and y search radii of each query; queries that cannot hold a partner are dropped.

    Returns:
        ``(q_box, q_bucket, rx, ry)`` of the live queries.
    """
    wi, hi = w[q_box], h[q_box]
    w_min, w_max = buckets.w_min[q_bucket], buckets.w_max[q_bucket]
    h_min, h_max = buckets.h_min[q_bucket], buckets.h_max[q_bucket]
    # Window radii bound (b) over the target bucket's sizes; the ratio test (a) prunes buckets.
    rx = (wi + w_max) / 2.0 - t * np.maximum(wi, w_min)
    ry = (hi + h_max) / 2.0 - t * np.maximum(hi, h_min)
    possible = (w_max > t * wi) & (wi > t * w_min) & (h_max > t * hi) & (hi > t * h_min)
    # Slack for rounding: the exact IoU test decides; the windows only need to be wide enough.
    rx += 1e-6 * (wi + w_max) + 1e-9 * np.abs(cx[q_box])
    ry += 1e-6 * (hi + h_max) + 1e-9 * np.abs(cy[q_box])
    live = possible & (rx > 0) & (ry > 0)
    return q_box[live], q_bucket[live], rx[live], ry[live]


def _search_bands(cx, cy, index: _BandIndex, q_box, q_bucket, rx, ry):
    """Every ``(query box, box)`` pair with the box in the query's x-window, in the bands of
    the query's bucket that its y-window touches.

    Returns:
        Two equally long int arrays ``(i, j)`` (unordered, possibly found twice).
    """
    bh_q = index.band_h[q_bucket]
    band_lo = np.maximum(np.floor((cy[q_box] - ry - index.y0) / bh_q).astype(np.int64), 0)
    band_hi = np.minimum(
        np.floor((cy[q_box] + ry - index.y0) / bh_q).astype(np.int64), index.n_bands - 1
    )
    rep = np.maximum(band_hi - band_lo + 1, 0)
    qi = np.repeat(np.arange(len(q_box)), rep)
    q_group = q_bucket[qi] * index.n_bands + band_lo[qi] + _ranges(rep)
    if index.rank_of is not None:
        pos = index.rank_of[q_group]
        found = pos >= 0
    else:
        pos = np.minimum(np.searchsorted(index.groups, q_group), len(index.groups) - 1)
        found = index.groups[pos] == q_group
    qi, pos = qi[found], pos[found]
    base = pos * index.span + (cx[q_box[qi]] - index.x0)
    lo = np.searchsorted(index.keys, base - rx[qi], side="left")
    counts = np.searchsorted(index.keys, base + rx[qi], side="right") - lo
    nonzero = counts > 0
    qi, lo, counts = qi[nonzero], lo[nonzero], counts[nonzero]
    i = np.repeat(q_box[qi], counts)
    j = index.order[np.repeat(lo, counts) + _ranges(counts)]
    return i, j


def _ranges(counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(c) for c in counts])``, vectorised."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
