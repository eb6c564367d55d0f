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

__all__ = ["match_bipartite_greedy", "match_bipartite_greedy_batch", "match_multi"]


def match_bipartite_greedy_batch(weight_matrix, valid_rows=None) -> np.ndarray:
    """Greedy bipartite matching for a batch of weight matrices at once.

    For each batch item, ``k`` rounds (``k`` = its number of valid rows) each pick the largest
    remaining weight (first row, then first column among equal values), assign that column to that
    row and remove both. Only the rows whose cached best column was just taken are searched again,
    so a round costs ``O(n_anchors)`` instead of ``O(n_gt * n_anchors)``.

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
    weights = np.array(weight_matrix, copy=True)
    if weights.ndim != 3:
        raise ValueError(
            f"weight_matrix must have shape (batch, n_gt, n_anchors), got {weights.shape}"
        )
    batch, n_gt, n_anchors = weights.shape
    matches = np.full((batch, n_gt), -1, dtype=np.int64)
    if n_gt == 0 or n_anchors == 0:
        return matches
    if valid_rows is None:
        valid_rows = np.ones((batch, n_gt), dtype=bool)
    valid_rows = np.asarray(valid_rows, dtype=bool)
    if valid_rows.shape != (batch, n_gt):
        raise ValueError(f"valid_rows must have shape {(batch, n_gt)}, got {valid_rows.shape}")
    if not np.issubdtype(weights.dtype, np.floating):
        weights = weights.astype(np.float64)
    weights[~valid_rows] = -np.inf

    best_col = np.argmax(weights, axis=2)  # (batch, n_gt)
    best_val = np.take_along_axis(weights, best_col[..., None], axis=2)[..., 0]
    best_val[~valid_rows] = -np.inf
    batch_index = np.arange(batch)
    for _ in range(int(valid_rows.sum(axis=1).max())):
        row = np.argmax(best_val, axis=1)  # (batch,)
        active = best_val[batch_index, row] > -np.inf
        if not active.any():
            break
        b, row = batch_index[active], row[active]
        col = best_col[b, row]
        matches[b, row] = col
        weights[b, row, :] = -np.inf
        best_val[b, row] = -np.inf
        weights[b, :, col] = -np.inf
        # Rows whose best column was just taken look again (others keep their cached best).
        stale_b, stale_row = np.nonzero((best_col[b] == col[:, None]) & (best_val[b] > -np.inf))
        if stale_b.size:
            stale_b = b[stale_b]
            rows = weights[stale_b, stale_row]  # (n_stale, n_anchors)
            new_col = np.argmax(rows, axis=1)
            best_col[stale_b, stale_row] = new_col
            best_val[stale_b, stale_row] = rows[np.arange(len(new_col)), new_col]
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
    return match_bipartite_greedy_batch(weights[None])[0]


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
