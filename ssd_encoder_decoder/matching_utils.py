"""Matching ground-truth boxes to anchor boxes (numpy).

Two matchers, as in the original ssd_keras (and Caffe SSD):

- `match_bipartite_greedy`: every ground-truth box gets one distinct anchor. Greedy, NOT the
  Hungarian algorithm: repeatedly take the globally best remaining (ground truth, anchor) pair,
  assign it, and remove that ground truth's row and that anchor's column.
- `match_multi`: every anchor takes its best ground truth if their weight reaches a threshold.

A weight matrix is ``(n_ground_truth, n_anchors)``, usually IoUs. Ties go to the lowest index, as
``np.argmax`` does, exactly like the original. `match_bipartite_greedy_batch` / `_rows` run the
same matcher over several images.

`SSDInputEncoder` composes these. For its fast path it uses the same two matchers on a sparse
list of (ground truth, anchor) pairs (`match_bipartite_greedy_pairs`, `match_multi_pairs`): only
the pairs whose IoU can decide anything, found by `AnchorIoU.pairs_at_least`, which gives the
IoUs of any boxes with a fixed anchor set bit for bit like `bounding_box_utils.iou`;
`match_bipartite_greedy_sparse` drives the bipartite step on such pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bounding_box_utils.bounding_box_utils import border_offset

__all__ = [
    "AnchorIoU",
    "match_bipartite_greedy",
    "match_bipartite_greedy_batch",
    "match_bipartite_greedy_pairs",
    "match_bipartite_greedy_rows",
    "match_bipartite_greedy_sparse",
    "match_multi",
    "match_multi_pairs",
]


def match_bipartite_greedy_batch(weight_matrix, valid_rows=None) -> np.ndarray:
    """`match_bipartite_greedy` for each of a batch of weight matrices.

    Args:
        weight_matrix: ``(batch, n_gt, n_anchors)`` weights (e.g. IoUs). Not modified.
        valid_rows: optional ``(batch, n_gt)`` bool mask; invalid rows (padding) are ignored.

    Returns:
        ``(batch, n_gt)`` int64: the anchor index matched to each valid row, -1 for invalid rows
        (and for valid rows left over when there are more ground truths than anchors).
    """
    weights = np.asarray(weight_matrix)
    if weights.ndim != 3:
        raise ValueError(
            f"weight_matrix must have shape (batch, n_gt, n_anchors), got {weights.shape}"
        )
    batch, n_gt, n_anchors = weights.shape
    if valid_rows is None:
        valid_rows = np.ones((batch, n_gt), dtype=bool)
    valid_rows = np.asarray(valid_rows, dtype=bool)
    if valid_rows.shape != (batch, n_gt):
        raise ValueError(f"valid_rows must have shape {(batch, n_gt)}, got {valid_rows.shape}")
    row_table = np.where(valid_rows, np.arange(batch * n_gt).reshape(batch, n_gt), -1)
    flat = match_bipartite_greedy_rows(weights.reshape(batch * n_gt, n_anchors), row_table)
    return np.where(valid_rows, flat.reshape(batch, n_gt), -1)


def match_bipartite_greedy_rows(weights: np.ndarray, row_table: np.ndarray) -> np.ndarray:
    """`match_bipartite_greedy` for several images whose weight rows share one matrix.

    Args:
        weights: ``(n_rows, n_anchors)`` weights; row ``r`` belongs to the image whose line of
            ``row_table`` lists it. Not modified.
        row_table: ``(batch, max_gt)`` int row indices into ``weights``, -1 for padding.

    Returns:
        ``(n_rows,)`` int64 anchor matched to each row (-1 if none could be, or if the row is
        in no line of ``row_table``).
    """
    weights = np.asarray(weights)
    row_table = np.asarray(row_table, dtype=np.int64)
    matches = np.full(len(weights), -1, dtype=np.int64)
    for line in row_table:
        rows = line[line >= 0]
        if rows.size:
            matches[rows] = match_bipartite_greedy(weights[rows])
    return matches


def match_bipartite_greedy(weight_matrix) -> np.ndarray:
    """Greedy bipartite matching: one distinct anchor per ground-truth box.

    Repeatedly takes the globally largest remaining weight, assigns that (ground truth, anchor)
    pair and removes that row and column. Greedy, not Hungarian (the original's algorithm).

    Args:
        weight_matrix: ``(n_gt, n_anchors)`` weights, e.g. IoUs. Not modified.

    Returns:
        ``(n_gt,)`` int64 anchor index for each ground-truth box (all distinct when
        ``n_gt <= n_anchors``).

    Example:
        >>> match_bipartite_greedy(np.array([[0.9, 0.8], [0.85, 0.1]]))
        array([0, 1])
    """
    weights = np.asarray(weight_matrix)
    if weights.ndim != 2:
        raise ValueError(f"weight_matrix must have shape (n_gt, n_anchors), got {weights.shape}")
    if not np.issubdtype(weights.dtype, np.floating):
        weights = weights.astype(np.float64)
    n_gt, n_anchors = weights.shape
    matches = np.full(n_gt, -1, dtype=np.int64)
    if n_gt == 0 or n_anchors == 0:
        return matches
    best_col = np.argmax(weights, axis=1)
    best_val = weights[np.arange(n_gt), best_col].astype(np.float64)
    best_val[np.isnan(best_val)] = -np.inf
    taken = []
    for _ in range(n_gt):
        row = int(np.argmax(best_val))
        if not best_val[row] > -np.inf:
            break
        col = int(best_col[row])
        matches[row] = col
        best_val[row] = -np.inf
        taken.append(col)
        # Rows whose best anchor was just taken look again, with the taken anchors masked.
        stale = np.nonzero((best_col == col) & (best_val > -np.inf))[0]
        if stale.size:
            candidates = weights[stale].astype(np.float64)  # a copy
            candidates[:, taken] = -np.inf
            new_col = np.argmax(candidates, axis=1)
            best_col[stale] = new_col
            best_val[stale] = candidates[np.arange(len(stale)), new_col]
    return matches


def match_multi(weight_matrix, threshold: float, exclude=None) -> tuple[np.ndarray, np.ndarray]:
    """Matches every anchor to its best ground truth if their weight is ``>= threshold``.

    Args:
        weight_matrix: ``(n_gt, n_anchors)`` weights, e.g. IoUs.
        threshold: minimum weight of a match (inclusive).
        exclude: optional anchor indices left out (e.g. the ones a bipartite match took).

    Returns:
        ``(gt_indices, anchor_indices)``: two equally long int64 arrays; anchor
        ``anchor_indices[i]`` is matched to ground truth ``gt_indices[i]``. Anchors are in
        increasing order; ties between ground truths go to the lowest index.

    Example:
        >>> match_multi(np.array([[0.7, 0.2, 0.5], [0.6, 0.4, 0.55]]), threshold=0.5)
        (array([0, 1]), array([0, 2]))
    """
    weights = np.asarray(weight_matrix)
    if weights.ndim != 2:
        raise ValueError(f"weight_matrix must have shape (n_gt, n_anchors), got {weights.shape}")
    if weights.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    gt_indices = np.argmax(weights, axis=0)
    overlaps = weights[gt_indices, np.arange(weights.shape[1])]
    matched = overlaps >= threshold
    if exclude is not None:
        matched[np.asarray(exclude, dtype=np.int64)] = False
    anchor_indices = np.nonzero(matched)[0]
    return gt_indices[anchor_indices].astype(np.int64), anchor_indices.astype(np.int64)


def match_multi_pairs(rows, keys, values, threshold: float, exclude_keys=None):
    """`match_multi` from a list of (row, anchor) pairs instead of a dense matrix.

    Every anchor id of ``keys`` is matched to its best row (largest value; the first row on
    ties, as ``np.argmax``) if that value is ``>= threshold``. The pair list must hold every
    pair of weight ``>= threshold`` for the result to equal the dense `match_multi`.

    Args:
        rows, keys, values: equally long arrays: the pairs' rows, (image, anchor) ids and
            weights.
        threshold: minimum weight of a match (inclusive).
        exclude_keys: optional anchor ids left out (e.g. the ones a bipartite match took).

    Returns:
        ``(rows, keys)``: two equally long int64 arrays, one entry per matched anchor id, ids
        increasing.
    """
    rows, keys, values = np.asarray(rows), np.asarray(keys), np.asarray(values)
    if exclude_keys is not None:
        free = ~np.isin(keys, exclude_keys)
        rows, keys, values = rows[free], keys[free], values[free]
    order = np.lexsort((rows, -values, keys))
    first = np.ones(len(order), dtype=bool)
    first[1:] = keys[order[1:]] != keys[order[:-1]]
    best = order[first]
    best = best[values[best] >= threshold]
    return rows[best].astype(np.int64), keys[best].astype(np.int64)


def match_bipartite_greedy_pairs(
    rows, keys, values, image_of_row, match, taken, n_anchors: int
) -> None:
    """`match_bipartite_greedy` from a list of (row, anchor) pairs instead of a dense matrix.

    The sparse form the encoder uses, so that the ``(M, n_anchors)`` IoUs are never built
    (`SSDInputEncoder` docs). Rows of several images are matched at once; each image's anchors
    are its own. Picks are made in place and can be continued with another, longer pair list.

    Visits the pairs by descending value, then row, then anchor, and matches a pair when its
    row is unmatched and its (image, anchor) id ``keys`` (``image * n_anchors + anchor``) is not
    taken: the dense greedy's picks, as long as the list holds every pair above its smallest
    value. ``match`` (anchor per row, -1 if none) and ``taken`` (a set of ids) are updated.

    Args:
        rows, keys, values: equally long arrays: the pairs' rows, (image, anchor) ids and
            weights.
        image_of_row: ``(n_rows,)`` the image of each row.
        match: ``(n_rows,)`` int64, updated in place.
        taken: set of the (image, anchor) ids already matched, updated in place.
        n_anchors: anchors per image.
    """
    if not len(rows):
        return
    order = np.lexsort((keys, rows, -values, image_of_row[rows]))
    images = image_of_row[rows[order]]
    bounds = np.flatnonzero(np.diff(images)) + 1
    row_list, key_list = rows[order].tolist(), keys[order].tolist()
    for lo, hi in zip([0, *bounds.tolist()], [*bounds.tolist(), len(order)]):
        wanted = sum(1 for r in set(row_list[lo:hi]) if match[r] < 0)
        for position in range(lo, hi):
            if not wanted:
                break
            row, key = row_list[position], key_list[position]
            if match[row] < 0 and key not in taken:
                match[row] = key % n_anchors
                taken.add(key)
                wanted -= 1


class AnchorIoU:
    """IoUs of any boxes with one fixed set of anchors, equal bit for bit to `iou`.

    `bounding_box_utils.iou` in ``'outer_product'`` mode computes, per pair, the overlap in x
    times the overlap in y. Anchors sit on a few grids, so they have only a few hundred distinct
    x-intervals and y-intervals (SSD300: 8732 anchors, a few hundred of each): the 1-D overlaps
    are computed once per distinct interval and gathered, with the same floating-point
    operations as `iou` in the same order, which makes the encoder several times faster.

    Args:
        anchor_corners: ``(N, 4)`` anchors ``[xmin, ymin, xmax, ymax]``.
        border_pixels: ``'half'``, ``'include'`` or ``'exclude'``.
        grid_shapes: optional ``(fh, fw, n_boxes)`` of each predictor layer, when the anchors
            are generated ones in that order; enables the per-layer grid path and
            `pairs_at_least` (checked: ignored if the anchors do not form such grids).

    Call with ``(M, 4)`` corners; returns the ``(M, N)`` IoUs (float64).
    """

    def __init__(
        self,
        anchor_corners: np.ndarray,
        border_pixels: str = "half",
        grid_shapes: Sequence[tuple[int, int, int]] | None = None,
    ):
        corners = np.asarray(anchor_corners, dtype=np.float64)
        self.d = border_offset(border_pixels)
        self.border_pixels = border_pixels
        d = self.d
        self.areas = (corners[:, 2] - corners[:, 0] + d) * (corners[:, 3] - corners[:, 1] + d)
        self.n_anchors = len(corners)
        self.positive_areas = bool((self.areas > 0).all())
        self.grid = _grid_intervals(corners, grid_shapes) if grid_shapes else None
        if self.grid is None:
            self.x_intervals, self.x_index = np.unique(
                corners[:, [0, 2]], axis=0, return_inverse=True
            )
            self.y_intervals, self.y_index = np.unique(
                corners[:, [1, 3]], axis=0, return_inverse=True
            )
            self.x_index = self.x_index.reshape(-1)
            self.y_index = self.y_index.reshape(-1)

    def _overlaps(self, lo, hi, intervals):
        """1-D overlaps as `iou` computes them: ``max(0, min(hi) - max(lo) + d)``."""
        expand = (slice(None),) + (None,) * (intervals.ndim - 1)
        return np.maximum(
            0.0,
            np.minimum(hi[expand], intervals[..., 1])
            - np.maximum(lo[expand], intervals[..., 0])
            + self.d,
        )

    @property
    def supports_pairs(self) -> bool:
        """Whether `pairs_at_least` can be used (grid anchors with positive areas)."""
        return self.grid is not None and self.positive_areas

    def pairs_at_least(self, boxes: np.ndarray, threshold: float):
        """Every (box, anchor) pair whose IoU is ``>= threshold``, without the dense matrix.

        The IoUs are the ones `__call__` gives, bit for bit. Candidates come from a necessary
        condition on the 1-D overlaps: with ``W = width + d`` (``d`` the border term),
        ``IoU >= t`` needs ``x_overlap >= t * max(W_box, W_anchor)`` (and the same in y),
        because the overlap in y is at most either height and the union at least either area.
        The test uses ``t * (1 - 1e-9)``, far more slack than float64 rounding can take, so no
        pair is lost; candidates below ``threshold`` are dropped after the exact IoU.

        Args:
            boxes: ``(M, 4)`` corners with positive areas (``W, H > 0``).
            threshold: a positive IoU threshold.

        Returns:
            ``(box_index, anchor_index, iou)``, three equally long arrays (int64, int64,
            float64), box-major.
        """
        if not self.supports_pairs:
            raise ValueError("pairs_at_least needs grid anchors with positive areas")
        if not threshold > 0:
            raise ValueError(f"threshold must be positive, got {threshold!r}")
        boxes = np.asarray(boxes, dtype=np.float64)
        d = self.d
        box_w = boxes[:, 2] - boxes[:, 0] + d
        box_h = boxes[:, 3] - boxes[:, 1] + d
        if not ((box_w > 0) & (box_h > 0)).all():
            raise ValueError("pairs_at_least needs boxes with positive areas")
        areas = box_w * box_h
        slack = threshold * (1.0 - 1e-9)
        found_box, found_anchor, found_iou = [], [], []
        for start, (_, fw, nb), x_iv, y_iv in self.grid:
            x_overlap = self._overlaps(boxes[:, 0], boxes[:, 2], x_iv)  # (M, fw, nb)
            y_overlap = self._overlaps(boxes[:, 1], boxes[:, 3], y_iv)  # (M, fh, nb)
            anchor_w = x_iv[..., 1] - x_iv[..., 0] + d  # (fw, nb)
            anchor_h = y_iv[..., 1] - y_iv[..., 0] + d  # (fh, nb)
            x_ok = x_overlap >= slack * np.maximum(box_w[:, None, None], anchor_w)
            y_ok = y_overlap >= slack * np.maximum(box_h[:, None, None], anchor_h)
            xb, xc, xj = np.nonzero(x_ok)  # (box, column, anchor shape)
            yb, yr, yj = np.nonzero(y_ok)  # (box, row, anchor shape)
            if not (xb.size and yb.size):
                continue
            # Join the column and row candidates of the same (box, anchor shape).
            x_key, y_key = xb * nb + xj, yb * nb + yj
            y_order = np.argsort(y_key, kind="stable")
            y_count = np.bincount(y_key, minlength=len(boxes) * nb)
            y_first = np.cumsum(y_count) - y_count
            reps = y_count[x_key]
            x_pick = np.repeat(np.arange(len(x_key)), reps)
            within = np.arange(len(x_pick)) - np.repeat(np.cumsum(reps) - reps, reps)
            y_pick = y_order[y_first[x_key[x_pick]] + within]
            b, c, j, r = xb[x_pick], xc[x_pick], xj[x_pick], yr[y_pick]
            anchor = start + (r * fw + c) * nb + j
            # The same operations as __call__: inter = x * y; union = box + anchor - inter.
            inter = x_overlap[b, c, j] * y_overlap[b, r, j]
            union = areas[b] + self.areas[anchor]
            union -= inter
            inter /= union
            keep = inter >= threshold
            found_box.append(b[keep])
            found_anchor.append(anchor[keep])
            found_iou.append(inter[keep])
        if not found_box:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy(), np.zeros(0)
        box_index = np.concatenate(found_box)
        order = np.argsort(box_index, kind="stable")
        return (
            box_index[order],
            np.concatenate(found_anchor)[order],
            np.concatenate(found_iou)[order],
        )

    def __call__(self, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, dtype=np.float64)
        k = len(boxes)
        d = self.d
        areas = (boxes[:, 2] - boxes[:, 0] + d) * (boxes[:, 3] - boxes[:, 1] + d)
        if self.grid is not None and self.positive_areas and (areas > 0).all():
            # Only the rows and columns of each layer that some box overlaps are computed;
            # everywhere else the intersection, hence the IoU, is exactly 0.
            result = np.zeros((k, self.n_anchors))
            for start, (fh, fw, nb), x_iv, y_iv in self.grid:
                x_overlap = self._overlaps(boxes[:, 0], boxes[:, 2], x_iv)  # (k, fw, nb)
                y_overlap = self._overlaps(boxes[:, 1], boxes[:, 3], y_iv)  # (k, fh, nb)
                cols = np.nonzero(x_overlap.any(axis=(0, 2)))[0]
                rows = np.nonzero(y_overlap.any(axis=(0, 2)))[0]
                if not (cols.size and rows.size):
                    continue
                c0, c1, r0, r1 = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
                inter = x_overlap[:, None, c0:c1, :] * y_overlap[:, r0:r1, None, :]
                layer_areas = self.areas[start : start + fh * fw * nb].reshape(fh, fw, nb)
                union = areas[:, None, None, None] + layer_areas[None, r0:r1, c0:c1, :]
                union -= inter
                inter /= union
                view = result[:, start : start + fh * fw * nb]
                view.shape = (k, fh, fw, nb)
                view[:, r0:r1, c0:c1, :] = inter
            return result
        if self.grid is not None:
            # Per predictor layer, x-overlaps depend on (column, box) and y-overlaps on
            # (row, box): their broadcast product is the intersection, in anchor order.
            result = np.empty((k, self.n_anchors))
            for start, (fh, fw, nb), x_iv, y_iv in self.grid:
                x_overlap = self._overlaps(boxes[:, 0], boxes[:, 2], x_iv)  # (k, fw, nb)
                y_overlap = self._overlaps(boxes[:, 1], boxes[:, 3], y_iv)  # (k, fh, nb)
                view = result[:, start : start + fh * fw * nb]
                view.shape = (k, fh, fw, nb)
                np.multiply(x_overlap[:, None, :, :], y_overlap[:, :, None, :], out=view)
        else:
            x_overlap = self._overlaps(boxes[:, 0], boxes[:, 2], self.x_intervals)
            y_overlap = self._overlaps(boxes[:, 1], boxes[:, 3], self.y_intervals)
            result = x_overlap[:, self.x_index]  # becomes the intersection, then the IoU
            result *= y_overlap[:, self.y_index]
        union = areas[:, None] + self.areas[None, :]
        union -= result
        if (areas > 0).all() and (self.areas > 0).all():
            result /= union  # every union is positive
            return result
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, result / np.where(union > 0, union, 1), 0.0)


def _grid_intervals(corners: np.ndarray, grid_shapes):
    """Per layer ``(start, (fh, fw, nb), x-intervals (fw, nb, 2), y-intervals (fh, nb, 2))``.

    None unless every layer's x-intervals are the same in every row and its y-intervals the
    same in every column (true for generated anchors, clipped or not).
    """
    grid, start = [], 0
    for fh, fw, nb in grid_shapes:
        layer = corners[start : start + fh * fw * nb].reshape(fh, fw, nb, 4)
        x_iv = layer[0, :, :, :][..., [0, 2]]
        y_iv = layer[:, 0, :, :][..., [1, 3]]
        if not (
            np.array_equal(layer[..., [0, 2]], np.broadcast_to(x_iv, (fh, fw, nb, 2)))
            and np.array_equal(layer[..., [1, 3]], np.broadcast_to(y_iv[:, None], (fh, fw, nb, 2)))
        ):
            return None
        grid.append((start, (fh, fw, nb), x_iv, y_iv))
        start += fh * fw * nb
    return grid if start == len(corners) else None


def match_bipartite_greedy_sparse(
    boxes: np.ndarray, image_of_row: np.ndarray, anchor_iou: AnchorIoU, pairs, threshold: float
) -> np.ndarray:
    """`match_bipartite_greedy` of several images' boxes to one anchor set, without dense IoUs.

    The greedy visits pairs by descending IoU (then row, then anchor: the dense greedy's tie
    rule). Walking the sorted pairs ``>= t`` (``pairs``) makes the dense greedy's picks for as
    long as its next pick is ``>= t``; after that, every pair of an unmatched row and a free
    anchor is ``< t``, so the rows still unmatched continue the same way with a lower threshold
    (t / 2, t / 4, ..., t / 64), and the last ones, if any, with their dense IoU rows.

    Args:
        boxes: ``(M, 4)`` corners of the ground truths of all images, with positive areas.
        image_of_row: ``(M,)`` the image of each box; each image's anchors are its own.
        anchor_iou: the anchors' `AnchorIoU` (``supports_pairs`` must be true).
        pairs: ``anchor_iou.pairs_at_least(boxes, threshold)``.
        threshold: the positive IoU ``t`` those pairs reach.

    Returns:
        ``(M,)`` int64: the anchor matched to each box (-1 if none is left).
    """
    n = anchor_iou.n_anchors
    pair_row, pair_anchor, pair_iou = pairs
    match = np.full(len(boxes), -1, dtype=np.int64)
    taken = set()  # matched (image, anchor) ids
    pair_key = image_of_row[pair_row] * n + pair_anchor
    match_bipartite_greedy_pairs(pair_row, pair_key, pair_iou, image_of_row, match, taken, n)
    for lower in threshold / 2.0 ** np.arange(1, 7):
        left = np.nonzero(match < 0)[0]
        if not left.size:
            break
        rows, anchors, values = anchor_iou.pairs_at_least(boxes[left], lower)
        rows = left[rows]
        keys = image_of_row[rows] * n + anchors
        match_bipartite_greedy_pairs(rows, keys, values, image_of_row, match, taken, n)
    left = np.nonzero(match < 0)[0]
    for image in np.unique(image_of_row[left]):
        rows = left[image_of_row[left] == image]
        similarities = anchor_iou(boxes[rows])
        image_taken = [key - image * n for key in taken if key // n == image]
        similarities[:, image_taken] = -np.inf
        match[rows] = match_bipartite_greedy(similarities)
        taken.update(int(a) + image * n for a in match[rows] if a >= 0)
    return match
