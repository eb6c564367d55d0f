"""Slow, obviously-correct loop references for the vectorised ssd-keras code.

They are the independent check of the library: the tests compare the vectorised functions with
them (exactly, on random and hand-built inputs), and the benchmarks in ``bench/`` time them as the
original ssd_keras algorithms (a Python loop over images, over classes, and a greedy NMS that
deletes one box per iteration). Keep them simple enough to check by eye; never vectorise them.

They live here, outside the installed packages, and are imported as ``bench.loop_references``:
the bench scripts put the repository root on ``sys.path``, and pytest runs from it.

Where a reference calls a library function (``iou``, ``convert_coordinates``), that function has
its own brute-force test (``pair_iou`` below); what the reference checks is the loop around it.
"""

from __future__ import annotations

import numpy as np

from bounding_box_utils.bounding_box_utils import convert_coordinates, iou

# ------------------------------------------------------------------------------------- IoU


def pair_iou(box_a, box_b, border_pixels="half"):
    """IoU of two ``(xmin, ymin, xmax, ymax)`` boxes, in float64 scalars; 0 when the union is 0.

    ``border_pixels`` as in ``bounding_box_utils.iou``: 'include' adds 1 to each side length
    (the VOC "+1 pixel" rule), 'exclude' subtracts 1, 'half' adds nothing.
    """
    d = {"include": 1.0, "half": 0.0, "exclude": -1.0}[border_pixels]
    a = [float(v) for v in box_a]
    b = [float(v) for v in box_b]
    w = max(min(a[2], b[2]) - max(a[0], b[0]) + d, 0.0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]) + d, 0.0)
    inter = w * h
    union = (a[2] - a[0] + d) * (a[3] - a[1] + d) + (b[2] - b[0] + d) * (b[3] - b[1] + d) - inter
    return inter / union if union > 0 else 0.0


# -------------------------------------------------------------------------------- matching


def match_bipartite_greedy(weight_matrix):
    """The original's loop: repeatedly take the global best pair, zero its row and column.

    Returns, for each ground truth (row), the index of its anchor (column).
    """
    weights = np.array(weight_matrix, dtype=np.float64)
    matches = np.zeros(len(weights), dtype=np.int64)
    for _ in range(len(weights)):
        anchors = np.argmax(weights, axis=1)
        gt = np.argmax(weights[np.arange(len(weights)), anchors])
        matches[gt] = anchors[gt]
        weights[gt] = 0
        weights[:, anchors[gt]] = 0
    return matches


def match_multi_loop(weight_matrix, threshold):
    """Anchor by anchor: its best ground truth (the first on ties) if that reaches ``threshold``.

    Returns ``(gt_indices, anchor_indices)``.
    """
    result_gt, result_anchor = [], []
    for anchor in range(weight_matrix.shape[1]):
        column = list(weight_matrix[:, anchor])
        best = max(column)
        if best >= threshold:
            result_gt.append(column.index(best))
            result_anchor.append(anchor)
    return np.array(result_gt, dtype=np.int64), np.array(result_anchor, dtype=np.int64)


def match_multi(weight_matrix, threshold):
    """The original's match_multi, line for line (what ``encode`` calls, so that its timing is
    the original's; ``match_multi_loop`` is the same rule written anchor by anchor)."""
    gt_indices = np.argmax(weight_matrix, axis=0)
    overlaps = weight_matrix[gt_indices, np.arange(weight_matrix.shape[1])]
    anchor_indices = np.nonzero(overlaps >= threshold)[0]
    return gt_indices[anchor_indices], anchor_indices


# -------------------------------------------------------------------------------- encoding


def encode(encoder, ground_truth_labels):
    """The original SSDInputEncoder.__call__, image by image, with ``bounding_box_utils.iou``.

    ``encoder`` is an ``SSDInputEncoder`` (for its template and settings); its own matching and
    box coding are not used.
    """
    y = encoder.generate_encoding_template(len(ground_truth_labels))
    y[:, :, encoder.background_id] = 1
    eye = np.eye(encoder.n_classes)
    for i, labels in enumerate(ground_truth_labels):
        if labels.size == 0:
            continue
        labels = labels.astype(np.float64)
        if encoder.normalize_coords:
            labels[:, [2, 4]] /= encoder.img_height
            labels[:, [1, 3]] /= encoder.img_width
        if encoder.coords != "corners":
            labels = convert_coordinates(labels, 1, f"corners2{encoder.coords}")
        gt_rows = np.concatenate([eye[labels[:, 0].astype(int)], labels[:, 1:5]], axis=-1)
        similarities = iou(labels[:, 1:5], y[i, :, -12:-8], coords=encoder.coords)
        bipartite = match_bipartite_greedy(similarities)
        y[i, bipartite, :-8] = gt_rows
        similarities[:, bipartite] = 0
        if encoder.matching_type == "multi":
            gt_idx, anchor_idx = match_multi(similarities, encoder.pos_iou_threshold)
            y[i, anchor_idx, :-8] = gt_rows[gt_idx]
            similarities[:, anchor_idx] = 0
        neutral = np.nonzero(similarities.max(axis=0) >= encoder.neg_iou_limit)[0]
        y[i, neutral, encoder.background_id] = 0
    if encoder.coords == "centroids":
        y[:, :, [-12, -11]] -= y[:, :, [-8, -7]]
        y[:, :, [-12, -11]] /= y[:, :, [-6, -5]] * y[:, :, [-4, -3]]
        y[:, :, [-10, -9]] /= y[:, :, [-6, -5]]
        y[:, :, [-10, -9]] = np.log(y[:, :, [-10, -9]]) / y[:, :, [-2, -1]]
    else:
        x_cols, y_cols = ([0, 2], [1, 3]) if encoder.coords == "corners" else ([0, 1], [2, 3])
        anchors = y[:, :, -8:-4]
        y[:, :, -12:-8] -= anchors
        width = anchors[..., x_cols[1]] - anchors[..., x_cols[0]]
        height = anchors[..., y_cols[1]] - anchors[..., y_cols[0]]
        y[:, :, [-12 + c for c in x_cols]] /= width[..., None]
        y[:, :, [-12 + c for c in y_cols]] /= height[..., None]
        y[:, :, -12:-8] /= y[:, :, -4:]
    return y


# -------------------------------------------------------------------------------- decoding


def decode_centroid_offsets(y_pred, img_height, img_width):
    """The original's box decoding (centroids, normalised coordinates) of ``y_pred``
    ``(batch, n_anchors, n_classes + 12)``: returns ``(batch, n_anchors, n_classes + 4)``, the
    class scores followed by ``(xmin, ymin, xmax, ymax)`` in pixels, in ``y_pred``'s dtype."""
    raw = np.copy(y_pred[:, :, :-8])
    raw[:, :, [-2, -1]] = np.exp(raw[:, :, [-2, -1]] * y_pred[:, :, [-2, -1]])
    raw[:, :, [-2, -1]] *= y_pred[:, :, [-6, -5]]
    raw[:, :, [-4, -3]] *= y_pred[:, :, [-4, -3]] * y_pred[:, :, [-6, -5]]
    raw[:, :, [-4, -3]] += y_pred[:, :, [-8, -7]]
    raw = convert_coordinates(raw, raw.shape[-1] - 4, "centroids2corners")
    raw[:, :, [-4, -2]] *= img_width
    raw[:, :, [-3, -1]] *= img_height
    return raw


def greedy_nms(rows, iou_threshold, score_col=1, box_start=2, border_pixels="half"):
    """The original loop: keep the highest-scoring row (the first on ties), delete it, drop the
    rows whose IoU with it exceeds ``iou_threshold``, repeat.

    ``rows[:, score_col]`` are the scores and ``rows[:, box_start:box_start + 4]`` the corners
    boxes. Returns the kept rows in the order kept (descending score).
    """
    left = np.array(rows, copy=True)
    kept = []
    while len(left):
        best = np.argmax(left[:, score_col])
        box = left[best].copy()
        kept.append(box)
        left = np.delete(left, best, axis=0)
        if not len(left):
            break
        # The original's element-wise iou() broadcast one box against many; the outer product
        # with one box does the same float operations.
        boxes = left[:, box_start : box_start + 4]
        one = box[None, box_start : box_start + 4]
        overlaps = iou(boxes, one, coords="corners", border_pixels=border_pixels)[:, 0]
        left = left[overlaps <= iou_threshold]
    return np.array(kept).reshape(-1, np.shape(rows)[1])


def decode_detections(y_pred, confidence_thresh, iou_threshold, top_k, img_height, img_width):
    """The original decode_detections (centroids, normalised): a loop over images and classes.

    Returns per image the rows ``(class, confidence, xmin, ymin, xmax, ymax)`` in float64, sorted
    by descending confidence, then class (the original cut ``top_k`` in arbitrary order).
    """
    boxes = decode_centroid_offsets(y_pred, img_height, img_width)
    n_classes = boxes.shape[-1] - 4
    results = []
    for image in boxes:
        pred = []
        for class_id in range(1, n_classes):
            single_class = image[:, [class_id, -4, -3, -2, -1]]
            candidates = single_class[single_class[:, 0] > confidence_thresh]
            if len(candidates):
                kept = greedy_nms(candidates, iou_threshold, score_col=0, box_start=1)
                rows = np.zeros((len(kept), 6))
                rows[:, 0], rows[:, 1:] = class_id, kept
                pred.append(rows)
        pred = np.concatenate(pred) if pred else np.zeros((0, 6))
        pred = pred[np.lexsort((pred[:, 0], -pred[:, 1]))]
        results.append(pred if top_k == "all" else pred[:top_k])
    return results


def decode_detections_debug(y_pred, confidence_thresh, iou_threshold, top_k, img_height, img_width):
    """The original decode_detections_debug: rows ``(box_id, class, confidence, box)``, class by
    class, sorted by descending confidence, then class, then box_id."""
    boxes = decode_centroid_offsets(y_pred, img_height, img_width)[..., -4:]
    results = []
    for b in range(len(y_pred)):
        pred = []
        for c in range(1, y_pred.shape[-1] - 12):
            box_ids = np.nonzero(y_pred[b, :, c] > confidence_thresh)[0]
            rows = np.zeros((len(box_ids), 6), dtype=y_pred.dtype)
            rows[:, 0], rows[:, 1], rows[:, 2:] = box_ids, y_pred[b, box_ids, c], boxes[b, box_ids]
            if len(rows):
                kept = greedy_nms(rows, iou_threshold).astype(np.float64)
                pred.append(np.column_stack([kept[:, 0], np.full(len(kept), c), kept[:, 1:]]))
        pred = np.concatenate(pred) if pred else np.zeros((0, 7))
        pred = pred[np.lexsort((pred[:, 0], pred[:, 1], -pred[:, 2]))]
        results.append(pred if top_k == "all" else pred[:top_k])
    return results


def decode_detections_fast(y_pred, confidence_thresh, iou_threshold, top_k, img_height, img_width):
    """The original decode_detections_fast: each anchor's best class (background included),
    non-background rows over the threshold, one class-agnostic NMS per image.

    Returns per image the rows ``(class, confidence, xmin, ymin, xmax, ymax)`` in ``y_pred``'s
    dtype, by descending confidence (ties in anchor order); ``iou_threshold=0`` skips NMS.
    """
    converted = np.copy(y_pred[:, :, -14:-8])
    converted[:, :, 0] = np.argmax(y_pred[:, :, :-12], axis=-1)
    converted[:, :, 1] = np.amax(y_pred[:, :, :-12], axis=-1)
    converted[:, :, 2:] = decode_centroid_offsets(y_pred, img_height, img_width)[:, :, -4:]
    results = []
    for image in converted:
        rows = image[np.nonzero(image[:, 0])]
        rows = rows[rows[:, 1] >= confidence_thresh]
        if iou_threshold and len(rows):
            rows = greedy_nms(rows, iou_threshold)
        rows = rows.reshape(-1, 6)
        results.append(rows if top_k == "all" else rows[:top_k])
    return results


def nms_top_k(boxes, scores, class_ids, candidates, iou_threshold, top_k, cap, per_group):
    """What ``keras_layers.detection_ops.greedy_nms_top_k`` computes, with Python loops.

    ``boxes`` ``(batch, n_anchors, 4)`` corners, ``scores``/``class_ids``/``candidates``
    ``(batch, n_anchors, n_columns)``. Per image (and per score column when ``per_group``):
    greedy NMS over the candidates by descending score (ties: anchor, then column) with
    float64 IoU, at most ``cap`` kept per group; then the ``top_k`` best of all groups as rows
    ``(class_id, score, xmin, ymin, xmax, ymax)``, zero-padded: ``(batch, top_k, 6)`` float32.
    """
    results = []
    for b in range(boxes.shape[0]):
        kept = []
        groups = range(scores.shape[2]) if per_group else [None]
        for group in groups:
            columns = [group] if per_group else range(scores.shape[2])
            items = [
                (float(scores[b, a, c]), a, c)
                for c in columns
                for a in range(boxes.shape[1])
                if candidates[b, a, c]
            ]
            items.sort(key=lambda item: (-item[0], item[1], item[2]))  # ties: anchor, column
            selected = []
            for score, a, c in items:
                if len(selected) == cap:
                    break
                if all(
                    pair_iou(boxes[b, a], boxes[b, a2]) <= iou_threshold for _, a2, _ in selected
                ):
                    selected.append((score, a, c))
            kept += selected
        kept.sort(key=lambda item: (-item[0], item[1], item[2]))
        rows = np.zeros((top_k, 6), np.float32)
        for i, (score, a, c) in enumerate(kept[:top_k]):
            rows[i] = [class_ids[b, a, c], score, *boxes[b, a]]
        results.append(rows)
    return np.stack(results)


# ------------------------------------------------------------------------- VOC evaluation


def voc_match(
    predictions,
    labels,
    neutral,
    image_ids,
    n_classes,
    threshold=0.5,
    border_pixels="include",
    ignore_neutral=True,
    sort_kind="quicksort",
):
    """The original Evaluator's matching (VOCevaldet): one detection at a time, by descending
    confidence, one IoU call against the image's ground truth of its class.

    Args:
        predictions: per class id (index 0 unused), a list of ``(image_id, conf, xmin, ymin,
            xmax, ymax)`` tuples (the original's ``prediction_results``).
        labels: per image, a list of ``[class_id, xmin, ymin, xmax, ymax]``.
        neutral: per image, one bool per label (``difficult``).
        image_ids: the images' ids, in the order of ``labels``.
        n_classes: classes ``1..n_classes`` are matched.
        threshold, border_pixels: the matching IoU threshold and border rule.
        ignore_neutral: a detection whose best ground truth is neutral counts as neither TP nor FP.
        sort_kind: numpy's sort for the confidences ('stable' keeps input order on ties, like
            MATLAB's sort).

    Returns:
        A list indexed by class id (entry 0 is None) of ``(true_positives, false_positives)``,
        0/1 int arrays in sorted order.
    """
    gt_by_id = {
        image_id: (np.asarray(lab, dtype=float).reshape(-1, 5), np.asarray(flags, dtype=bool))
        for image_id, lab, flags in zip(image_ids, labels, neutral)
    }
    out = [None]
    for c in range(1, n_classes + 1):
        rows = predictions[c]
        conf = np.array([r[1] for r in rows])
        order = np.argsort(-conf, kind=sort_kind)
        tp, fp = np.zeros(len(rows), int), np.zeros(len(rows), int)
        taken = {}
        for k, j in enumerate(order):
            image_id, _, *box = rows[j]
            g, flags = gt_by_id[image_id]
            mask = g[:, 0] == c
            g, flags = g[mask], flags[mask]
            if g.shape[0] == 0:
                fp[k] = 1
                continue
            overlaps = iou(g[:, 1:], np.array(box), coords="corners", border_pixels=border_pixels)
            best = int(np.argmax(overlaps[:, 0]))
            if overlaps[best, 0] < threshold:
                fp[k] = 1
            elif ignore_neutral and flags[best]:
                continue
            elif best in taken.setdefault(image_id, set()):
                fp[k] = 1
            else:
                taken[image_id].add(best)
                tp[k] = 1
        out.append((tp, fp))
    return out
