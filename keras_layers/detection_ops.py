"""Box coding and greedy non-maximum suppression in `keras.ops` (TensorFlow, JAX, PyTorch).

These are the maths behind the `DecodeDetections` and `DecodeDetectionsFast` layers. Keras 3 has no
NMS op (`keras.utils.bounding_boxes` converts formats and computes IoU only), and keras-hub's
`NonMaxSuppression` is class-agnostic over the best class score, so per-class NMS would need
box-shifting tricks on top of it; it would also add keras-hub as a dependency for one function.
The NMS here is written for static shapes and is exactly the greedy algorithm of the original
(`tf.image.non_max_suppression` per class): walk the boxes by decreasing confidence, keep a box
unless a box already kept in its group overlaps it with IoU **>** ``iou_threshold``.

How it stays exact with static shapes: the candidates of an image are visited by decreasing
confidence in chunks of `CHUNK_SIZE` (each chunk is a partial top-k of the candidates after the
previous chunk, so nothing is fully sorted). A chunk's boxes are first suppressed by the boxes
already kept (at most ``top_k`` of them matter), then greedy NMS inside the chunk is solved as the
fixed point of ``keep[i] = candidate[i] and not any(keep[j] and overlap[j, i] for j < i)``. Because
box ``i`` only depends on earlier boxes, that recursion has exactly one solution (the greedy one),
and iterating it from "keep everything" reaches it in as many sweeps as the longest suppression
chain (a few in practice), each sweep a vectorised ``(K, K)`` operation. The loop over chunks stops
as soon as every image has ``top_k`` kept boxes or no candidates left, so usually after one chunk.

ONNX export (tf2onnx): inside a loop body tf2onnx converts a float ``where(cond, a, b)`` (TF
``SelectV2``) to ``cast(cond) * a + cast(not cond) * b``, so an infinite value in either branch
turns every element into NaN (``0 * inf``). The chunk loop therefore uses the largest finite value
of the score dtype, not ``+-inf``, as its "before everything" / "after everything" sort keys; the
order (and so the result) is the same, since candidates are counted, not recognised by their key.
"""

from __future__ import annotations

import keras
import ml_dtypes
from keras import ops

from bounding_box_utils.bounding_box_utils import check_coords

CHUNK_SIZE = 512
"""Candidates handled per step of the NMS loop (the self-suppression matrix is chunk x chunk)."""


def encode_boxes(gt, anchors, variances, coords="centroids"):
    """`ssd_encoder_decoder.box_coding.encode_boxes` in `keras.ops`: offsets of boxes from anchors.

    Args:
        gt: ``(..., 4)`` boxes in ``coords`` format.
        anchors: ``(..., 4)`` anchors in ``coords`` format (broadcastable to ``gt``).
        variances: ``(4,)`` or ``(..., 4)`` values the offsets are divided by.
        coords: ``'centroids'``, ``'minmax'`` or ``'corners'`` (formulas in `box_coding`).

    Returns:
        ``(..., 4)`` offsets, in ``gt``'s dtype.
    """
    check_coords(coords)
    gt = ops.convert_to_tensor(gt)
    anchors, variances = _like(anchors, gt), _like(variances, gt)
    g, a, v = _columns(gt), _columns(anchors), _columns(variances)
    if coords == "centroids":
        values = (
            (g[0] - a[0]) / (a[2] * v[0]),
            (g[1] - a[1]) / (a[3] * v[1]),
            ops.log(g[2] / a[2]) / v[2],
            ops.log(g[3] / a[3]) / v[3],
        )
    else:
        sides = _anchor_sides(a, coords)
        values = tuple((g[i] - a[i]) / sides[i] / v[i] for i in range(4))
    return ops.stack(values, axis=-1)


def decode_boxes(offsets, anchors, variances, coords="centroids"):
    """`ssd_encoder_decoder.box_coding.decode_boxes` in `keras.ops`: boxes from their offsets.

    The offsets are multiplied by the variances first (the original `DecodeDetections` layer's
    order of operations; the numpy form follows the original numpy decoder's, so the two can
    differ in the last bit of a centroids box).

    Args:
        offsets: ``(..., 4)`` predicted offsets.
        anchors: ``(..., 4)`` anchors in ``coords`` format (broadcastable to ``offsets``).
        variances: ``(4,)`` or ``(..., 4)`` variances.
        coords: ``'centroids'``, ``'minmax'`` or ``'corners'``.

    Returns:
        ``(..., 4)`` boxes in ``coords`` format, in ``offsets``' dtype.
    """
    check_coords(coords)
    offsets = ops.convert_to_tensor(offsets)
    anchors, variances = _like(anchors, offsets), _like(variances, offsets)
    scaled = offsets * variances
    s, a = _columns(scaled), _columns(anchors)
    if coords == "centroids":
        values = (
            s[0] * a[2] + a[0],
            s[1] * a[3] + a[1],
            ops.exp(s[2]) * a[2],
            ops.exp(s[3]) * a[3],
        )
    else:
        sides = _anchor_sides(a, coords)
        values = tuple(s[i] * sides[i] + a[i] for i in range(4))
    return ops.stack(values, axis=-1)


def _like(x, reference):
    """``x`` as a tensor of ``reference``'s dtype (no cast when it already has it)."""
    x = ops.convert_to_tensor(x)
    if keras.backend.standardize_dtype(x.dtype) != keras.backend.standardize_dtype(reference.dtype):
        x = ops.cast(x, reference.dtype)
    return x


def _columns(x):
    return [x[..., i] for i in range(4)]


def _anchor_sides(a, coords):
    """Per column of a ``'corners'`` or ``'minmax'`` box, the anchor side it is scaled by."""
    if coords == "minmax":  # (xmin, xmax, ymin, ymax)
        a_w, a_h = a[1] - a[0], a[3] - a[2]
        return a_w, a_w, a_h, a_h
    a_w, a_h = a[2] - a[0], a[3] - a[1]  # corners: (xmin, ymin, xmax, ymax)
    return a_w, a_h, a_w, a_h


def decode_box_offsets(
    y_pred, coords="centroids", normalize_coords=True, img_height=None, img_width=None
):
    """Turns the predicted offsets of an SSD output into corners (`decode_boxes`).

    Args:
        y_pred: ``(batch, n_anchors, n_classes + 1 + 12)`` model output; the last 12 columns are
            the 4 predicted offsets, the 4 anchor coordinates (in ``coords`` format) and the 4
            variances.
        coords: the format of the anchors and offsets: ``'centroids'``, ``'minmax'`` or
            ``'corners'``.
        normalize_coords: whether the anchors are relative to the image size; if so the boxes are
            scaled to pixels with ``img_width`` and ``img_height``.
        img_height: image height in pixels (needed with ``normalize_coords``).
        img_width: image width in pixels (needed with ``normalize_coords``).

    Returns:
        ``(batch, n_anchors, 4)`` boxes ``(xmin, ymin, xmax, ymax)`` (corners format).
    """
    check_coords(coords)
    y_pred = ops.convert_to_tensor(y_pred)
    b = _columns(decode_boxes(y_pred[..., -12:-8], y_pred[..., -8:-4], y_pred[..., -4:], coords))
    if coords == "centroids":  # (cx, cy, w, h)
        cx, cy, w, h = b
        xmin, ymin, xmax, ymax = cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h
    elif coords == "minmax":
        xmin, xmax, ymin, ymax = b
    else:
        xmin, ymin, xmax, ymax = b
    if normalize_coords:
        xmin, xmax = xmin * img_width, xmax * img_width
        ymin, ymax = ymin * img_height, ymax * img_height
    return ops.stack([xmin, ymin, xmax, ymax], axis=-1)


def pairwise_iou(boxes1, boxes2):
    """IoU of every box of ``boxes1`` with every box of ``boxes2``, per batch item.

    Boxes are corners ``(xmin, ymin, xmax, ymax)``, sides ``max - min`` (``border_pixels='half'``).
    A pair whose union is not positive has IoU 0.

    Args:
        boxes1: ``(batch, n, 4)``.
        boxes2: ``(batch, m, 4)``.

    Returns:
        ``(batch, n, m)``.
    """
    a = [boxes1[..., i][:, :, None] for i in range(4)]
    b = [boxes2[..., i][:, None, :] for i in range(4)]
    inter_w = ops.maximum(ops.minimum(a[2], b[2]) - ops.maximum(a[0], b[0]), 0.0)
    inter_h = ops.maximum(ops.minimum(a[3], b[3]) - ops.maximum(a[1], b[1]), 0.0)
    intersection = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
    positive = union > 0
    return ops.where(positive, intersection / ops.where(positive, union, 1.0), 0.0)


def _stable_top_k(x, k):
    """``ops.top_k`` along the last axis with equal values in increasing index order.

    TensorFlow's and JAX's top-k already break ties that way; ``torch.topk`` does not, so on
    PyTorch a (slower) stable argsort is used instead.

    Returns:
        ``(values, int32 indices)``, each ``(..., k)``.
    """
    if keras.backend.backend() == "torch":
        indices = ops.argsort(-x, axis=-1)[..., :k]
        return ops.take_along_axis(x, indices, axis=-1), ops.cast(indices, "int32")
    values, indices = ops.top_k(x, k=k)
    return values, ops.cast(indices, "int32")


def _greedy_nms_in_chunk(boxes, groups, candidates, iou_threshold):
    """Greedy NMS among ``K`` boxes sorted by decreasing confidence, as a fixed point.

    Args:
        boxes: ``(batch, K, 4)`` corners.
        groups: ``(batch, K)`` int; only boxes of the same group suppress each other.
        candidates: ``(batch, K)`` bool; boxes that may be kept (not below the confidence threshold
            and not suppressed by an earlier chunk).

    Returns:
        ``(batch, K)`` bool, the boxes greedy NMS keeps.
    """
    k = ops.shape(boxes)[1]
    positions = ops.arange(k)
    earlier = positions[:, None] < positions[None, :]  # (K, K): [j, i] = j comes before i
    suppresses = ops.logical_and(
        pairwise_iou(boxes, boxes) > iou_threshold,
        ops.equal(groups[:, :, None], groups[:, None, :]),
    )
    suppresses = ops.logical_and(suppresses, earlier[None])  # (batch, K, K): j may suppress i

    def sweep(keep, changed):
        suppressed = ops.any(ops.logical_and(suppresses, keep[:, :, None]), axis=1)
        new_keep = ops.logical_and(candidates, ops.logical_not(suppressed))
        return new_keep, ops.any(ops.not_equal(new_keep, keep))

    keep, _ = ops.while_loop(
        lambda keep, changed: changed,
        sweep,
        (candidates, ops.convert_to_tensor(True)),
        maximum_iterations=k + 1,
    )
    return keep


def greedy_nms_top_k(
    boxes, class_ids, scores, candidates, iou_threshold, top_k, max_per_group, group_by_column
):
    """Greedy NMS over all candidate boxes of each image; returns the ``top_k`` best survivors.

    Candidates are (anchor, column) pairs: column ``c`` of ``scores`` and ``class_ids`` is one
    candidate per anchor (one column per class for per-class NMS, a single column for
    class-agnostic NMS).

    Args:
        boxes: ``(batch, n_anchors, 4)`` corners ``(xmin, ymin, xmax, ymax)``.
        class_ids: ``(batch, n_anchors, n_columns)`` class id of each candidate (any dtype).
        scores: ``(batch, n_anchors, n_columns)`` confidence of each candidate.
        candidates: ``(batch, n_anchors, n_columns)`` bool, which pairs take part.
        iou_threshold: a box is suppressed by a kept box of its group with IoU > this.
        top_k: number of output rows.
        max_per_group: at most this many boxes are kept per group (the original's
            ``nms_max_output_size``).
        group_by_column: True: NMS runs separately per column (per class); False: all candidates
            form one group (class-agnostic).

    Returns:
        ``(batch, top_k, 6)`` rows ``(class_id, score, xmin, ymin, xmax, ymax)`` sorted by
        decreasing score (ties: by anchor, then column), all-zero rows after the survivors.
    """
    boxes, class_ids, scores = (ops.convert_to_tensor(x) for x in (boxes, class_ids, scores))
    candidates = ops.convert_to_tensor(candidates, dtype="bool")
    dtype = boxes.dtype
    batch = ops.shape(scores)[0]
    n_anchors, n_columns = scores.shape[1], scores.shape[2]
    n_candidates = n_anchors * n_columns
    n_groups = n_columns if group_by_column else 1
    chunk = min(CHUNK_SIZE, n_candidates)

    flat_scores = ops.reshape(scores, (batch, n_candidates))
    flat_class_ids = ops.cast(ops.reshape(class_ids, (batch, n_candidates)), dtype)
    flat_candidates = ops.reshape(candidates, (batch, n_candidates))
    n_valid = ops.sum(ops.cast(flat_candidates, "int32"), axis=1)  # (batch,)
    # Finite sentinels, not +-inf: tf2onnx turns a `where` inside a loop body into
    # `cond * a + (1 - cond) * b`, and 0 * inf = NaN there (see the module docstring).
    highest = float(ml_dtypes.finfo(keras.backend.standardize_dtype(flat_scores.dtype)).max)
    lowest = ops.convert_to_tensor(-highest, dtype=flat_scores.dtype)
    sort_keys = ops.where(flat_candidates, flat_scores, lowest)

    slots = ops.arange(top_k, dtype="int32")
    group_ids = ops.arange(n_groups, dtype="int32")
    chunk_positions = ops.arange(chunk, dtype="int32")
    flat_positions = ops.arange(n_candidates, dtype="int32")[None, :]

    def not_done(start, last_key, last_index, rows, row_groups, filled, n_kept, group_counts):
        return ops.any(ops.logical_and(n_kept < top_k, start < n_valid))

    def step(start, last_key, last_index, rows, row_groups, filled, n_kept, group_counts):
        chunk_keys, flat_index = _next_chunk(
            sort_keys, flat_positions, last_key, last_index, lowest, chunk
        )
        in_range = (start + chunk_positions)[None, :] < n_valid[:, None]  # (batch, chunk)
        anchor = flat_index // n_columns  # (batch, chunk)
        group = flat_index % n_columns if group_by_column else ops.zeros_like(flat_index)
        chunk_boxes = ops.take_along_axis(boxes, anchor[..., None], axis=1)  # (batch, chunk, 4)
        chunk_scores = ops.take_along_axis(flat_scores, flat_index, axis=1)
        chunk_class_ids = ops.take_along_axis(flat_class_ids, flat_index, axis=1)

        by_earlier = _suppressed_by_kept(
            chunk_boxes, group, rows, row_groups, filled, iou_threshold
        )
        candidate = ops.logical_and(in_range, ops.logical_not(by_earlier))
        keep = _greedy_nms_in_chunk(chunk_boxes, group, candidate, iou_threshold)
        keep, group_counts = _cap_per_group(keep, group, group_ids, group_counts, max_per_group)

        new_rows = ops.concatenate(
            [chunk_class_ids[..., None], chunk_scores[..., None], chunk_boxes], axis=-1
        )  # (batch, chunk, 6)
        rows, row_groups, filled, n_kept = _append_kept(
            rows, row_groups, filled, n_kept, keep, new_rows, group, slots
        )
        return (
            start + chunk,
            chunk_keys[:, -1],
            flat_index[:, -1],
            rows,
            row_groups,
            filled,
            n_kept,
            group_counts,
        )

    state = (
        ops.convert_to_tensor(0, dtype="int32"),
        ops.full((batch,), highest, dtype=sort_keys.dtype),  # with index -1: "before all"
        ops.full((batch,), -1, dtype="int32"),
        ops.zeros((batch, top_k, 6), dtype=dtype),
        ops.zeros((batch, top_k), dtype="int32"),
        ops.zeros((batch, top_k), dtype="bool"),
        ops.zeros((batch,), dtype="int32"),
        ops.zeros((batch, n_groups), dtype="int32"),
    )
    rows = ops.while_loop(not_done, step, state)[3]
    return rows


def _next_chunk(sort_keys, flat_positions, last_key, last_index, lowest, chunk):
    """The next ``chunk`` candidates in (decreasing score, increasing index) order.

    They are the best of those after the last one visited (``last_key``, ``last_index`` per
    image). A partial top-k per step is much cheaper than sorting all candidates (175k for
    SSD300 VOC), and one step is usually enough.

    Returns:
        ``(chunk_keys, flat_index)``, each ``(batch, chunk)``.
    """
    after_last = ops.logical_or(
        sort_keys < last_key[:, None],
        ops.logical_and(
            ops.equal(sort_keys, last_key[:, None]), flat_positions > last_index[:, None]
        ),
    )
    return _stable_top_k(ops.where(after_last, sort_keys, lowest), chunk)


def _suppressed_by_kept(chunk_boxes, group, rows, row_groups, filled, iou_threshold):
    """``(batch, chunk)`` bool: suppressed by a box kept in an earlier chunk.

    Only the first ``top_k`` kept boxes (the output rows) can matter: once an image has
    ``top_k`` rows, nothing after them is output.
    """
    overlap = pairwise_iou(chunk_boxes, rows[..., 2:]) > iou_threshold  # (batch, chunk, top_k)
    same_group = ops.equal(group[:, :, None], row_groups[:, None, :])
    by_earlier = ops.logical_and(ops.logical_and(overlap, same_group), filled[:, None, :])
    return ops.any(by_earlier, axis=2)


def _cap_per_group(keep, group, group_ids, group_counts, max_per_group):
    """At most ``max_per_group`` kept boxes per group (the original's ``nms_max_output_size``).

    Boxes past the cap would only suppress later boxes of their own group, which are past the
    cap as well, so dropping them after the NMS of the chunk is exact.

    Returns:
        ``(keep, group_counts)`` updated.
    """
    one_hot = ops.logical_and(
        ops.equal(group[:, :, None], group_ids[None, None, :]), keep[:, :, None]
    )  # (batch, chunk, groups)
    one_hot = ops.cast(one_hot, "int32")
    rank_in_group = ops.sum(ops.cumsum(one_hot, axis=1) * one_hot, axis=2)  # 1-based
    count_before = ops.take_along_axis(group_counts, group, axis=1)
    keep = ops.logical_and(keep, count_before + rank_in_group <= max_per_group)
    keep_int = ops.cast(keep, "int32")
    group_counts = group_counts + ops.sum(one_hot * keep_int[:, :, None], axis=1)
    return keep, group_counts


def _append_kept(rows, row_groups, filled, n_kept, keep, new_rows, group, slots):
    """Appends the kept ``(batch, chunk, 6)`` rows, in order, after the ``n_kept`` rows there.

    Returns:
        ``(rows, row_groups, filled, n_kept)`` updated (rows past ``top_k`` are dropped).
    """
    keep_int = ops.cast(keep, "int32")
    slot = n_kept[:, None] + ops.cumsum(keep_int, axis=1) - 1  # (batch, chunk)
    goes_to = ops.logical_and(
        ops.equal(slot[:, :, None], slots[None, None, :]), keep[:, :, None]
    )  # (batch, chunk, top_k)
    placed = ops.sum(ops.where(goes_to[..., None], new_rows[:, :, None, :], 0.0), axis=1)
    placed_groups = ops.sum(ops.where(goes_to, group[:, :, None], 0), axis=1)
    newly_filled = ops.any(goes_to, axis=1)
    rows = ops.where(newly_filled[..., None], placed, rows)
    row_groups = ops.where(newly_filled, placed_groups, row_groups)
    filled = ops.logical_or(filled, newly_filled)
    n_kept = n_kept + ops.sum(keep_int, axis=1)
    return rows, row_groups, filled, n_kept
