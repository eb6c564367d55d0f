"""Matching ground-truth boxes to anchor boxes (numpy).

Two matchers, as in the original ssd_keras (and Caffe SSD):

- `match_bipartite_greedy`: every ground-truth box gets one distinct anchor. Greedy, NOT the
  Hungarian algorithm: repeatedly take the globally best remaining (ground truth, anchor) pair,
  assign it, and remove that ground truth's row and that anchor's column.
- `match_multi`: every anchor takes its best ground truth if their weight reaches a threshold.

A weight matrix is ``(n_ground_truth, n_anchors)``, usually IoUs. Ties go to the lowest index, as
``np.argmax`` does, exactly like the original.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "match_bipartite_greedy",
    "match_bipartite_greedy_batch",
    "match_bipartite_greedy_rows",
    "match_multi",
]


def match_bipartite_greedy_batch(weight_matrix, valid_rows=None) -> np.ndarray:
    """Greedy bipartite matching for a batch of weight matrices at once.

    For each batch item, ``k`` rounds (``k`` = its number of valid rows) each pick the largest
    remaining weight (first row, then first column among equal values), assign that column to that
    row and remove both.

    Differences from the original (only reachable when a ground truth has weight 0 with every
    anchor still free): the original zeroed removed rows/columns, so such a ground truth could be
    given an anchor that was already taken, or overwrite an earlier match. Here removed rows and
    columns can never be picked again, so the anchors are always distinct.

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
    """Greedy bipartite matching of several images whose weight rows share one matrix.

    Args:
        weights: ``(n_rows, n_anchors)`` weights; row ``r`` belongs to the image whose line of
            ``row_table`` lists it. Not modified.
        row_table: ``(batch, max_gt)`` int row indices into ``weights``, -1 for padding.

    Returns:
        ``(n_rows,)`` int64 anchor matched to each row (-1 if none could be). Each round handles
        every image at once; only the rows whose cached best anchor was just taken are searched
        again (with that image's taken anchors masked), so a round costs ``O(n_anchors)`` per
        such row instead of ``O(n_gt * n_anchors)``.
    """
    weights = np.asarray(weights)
    if not np.issubdtype(weights.dtype, np.floating):
        weights = weights.astype(np.float64)
    n_rows, n_anchors = weights.shape
    row_table = np.asarray(row_table, dtype=np.int64)
    batch, max_gt = row_table.shape
    matches = np.full(n_rows, -1, dtype=np.int64)
    if n_rows == 0 or n_anchors == 0 or max_gt == 0:
        return matches
    padded = row_table < 0
    safe_table = np.where(padded, 0, row_table)
    image_of_row = np.zeros(n_rows, dtype=np.int64)
    image_of_row[row_table[~padded]] = np.nonzero(~padded)[0]

    best_col = np.argmax(weights, axis=1)  # (n_rows,)
    best_val = weights[np.arange(n_rows), best_col].astype(np.float64)
    best_val[np.isnan(best_val)] = -np.inf
    done = np.ones(n_rows, dtype=bool)
    done[row_table[~padded]] = False  # rows outside the table are never matched
    taken = np.full((batch, max_gt), -1, dtype=np.int64)  # anchors taken per image, in order
    batch_index = np.arange(batch)
    for step in range(max_gt):
        values = np.where(padded | done[safe_table], -np.inf, best_val[safe_table])  # (B, K)
        slot = np.argmax(values, axis=1)
        active = values[batch_index, slot] > -np.inf
        if not active.any():
            break
        b = batch_index[active]
        rows = safe_table[b, slot[active]]
        cols = best_col[rows]
        matches[rows] = cols
        done[rows] = True
        taken[b, step] = cols
        # Rows of the same image whose best anchor was just taken look again.
        taken_by_image = np.full(batch, -1, dtype=np.int64)
        taken_by_image[b] = cols
        stale = np.nonzero(~done & (best_col == taken_by_image[image_of_row]))[0]
        if stale.size:
            candidates = weights[stale].astype(np.float64)  # (n_stale, n_anchors), a copy
            owner = taken[image_of_row[stale], : step + 1]  # (n_stale, step + 1)
            which, k = np.nonzero(owner >= 0)
            candidates[which, owner[which, k]] = -np.inf
            new_col = np.argmax(candidates, axis=1)
            best_col[stale] = new_col
            best_val[stale] = candidates[np.arange(len(stale)), new_col]
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


def match_multi(weight_matrix, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Matches every anchor to its best ground truth if their weight is ``>= threshold``.

    Args:
        weight_matrix: ``(n_gt, n_anchors)`` weights, e.g. IoUs.
        threshold: minimum weight of a match (inclusive).

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
    anchor_indices = np.nonzero(overlaps >= threshold)[0]
    return gt_indices[anchor_indices].astype(np.int64), anchor_indices.astype(np.int64)
