"""Encodes ground-truth labels into SSD training targets (numpy).

`SSDInputEncoder` has the original ssd_keras signature and numbers. It matches ground-truth boxes to
the anchors of `ssd_encoder_decoder.anchor_boxes` (the one anchor generator), with IoUs equal bit
for bit to `bounding_box_utils.iou`, and writes the target tensor the SSD loss expects:

``(batch, n_anchors, n_classes + 1 + 12)``, last axis = ``[one-hot classes (n_classes + 1) |
4 offsets | 4 anchor coordinates | 4 variances]``.

Background anchors have the class vector ``e_background`` and offsets 0, neutral (ignored)
anchors an all-zero class vector and offsets 0, positive anchors the one-hot class of their ground
truth and its encoded offsets. Only the few (ground truth, anchor) pairs whose IoU can decide
anything are computed (`AnchorIoU.pairs_at_least`); the dense IoU matrix is the fallback for
unusual anchor sets. The output is one broadcast copy of a cached template plus the matched rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bounding_box_utils.bounding_box_utils import (
    LABEL_FORMAT,
    border_offset,
    check_coords,
    convert_coordinates,
    to_corners,
)
from ssd_encoder_decoder.anchor_boxes import as_hw_pair, generate_anchors, resolve_anchor_config
from ssd_encoder_decoder.box_coding import encode_boxes
from ssd_encoder_decoder.matching_utils import (
    AnchorIoU,
    match_bipartite_greedy,
    match_bipartite_greedy_sparse,
    match_multi,
    match_multi_pairs,
)

__all__ = ["AnchorIoU", "DegenerateBoxError", "SSDInputEncoder"]

_CLASS_ID, _XMIN, _YMIN, _XMAX, _YMAX = (LABEL_FORMAT.index(k) for k in LABEL_FORMAT)


class DegenerateBoxError(ValueError):
    """A ground-truth box with ``xmax <= xmin`` or ``ymax <= ymin`` was given to the encoder.

    Such boxes cannot be encoded (their log-size offsets are not finite). Remove them before
    encoding, e.g. with ``DataGenerator.generate(..., degenerate_box_handling='remove')``.
    """


class SSDInputEncoder:
    """Turns ground-truth labels into the SSD training target tensor.

    Matching (the original's, Caffe SSD's): (1) greedy bipartite matching gives every ground truth
    its own best anchor; (2) with ``matching_type='multi'`` every other anchor whose best ground
    truth has IoU ``>= pos_iou_threshold`` is matched to it too; (3) every anchor still unmatched
    whose best IoU is ``>= neg_iou_limit`` becomes neutral (ignored by the loss); (4) all others
    are background. IoUs are computed in float64 on the (normalised) coordinates, with the same
    operations as the original, so even exact ties resolve the same way.

    Offsets: `box_coding.encode_boxes` of each positive anchor's ground truth (the formulas per
    ``coords`` are in `ssd_encoder_decoder.box_coding`).

    Args:
        img_height: model input height in pixels.
        img_width: model input width in pixels.
        n_classes: number of object classes, background excluded (e.g. 20 for Pascal VOC).
        predictor_sizes: ``(fh, fw)`` of each predictor layer's feature map.
        min_scale, max_scale: smallest and largest anchor scale (fractions of
            ``min(img_height, img_width)``); ``linspace(min_scale, max_scale, n_layers + 1)``.
        scales: explicit ``n_layers + 1`` scales; win over ``min_scale``/``max_scale``.
        aspect_ratios_global: aspect ratios of every layer.
        aspect_ratios_per_layer: one list of aspect ratios per layer; wins over the global one.
        two_boxes_for_ar1: add a second ratio-1 anchor of scale ``sqrt(s_k * s_{k+1})``.
        steps: per layer, the distance between anchor centres in pixels (a number or an
            ``(h, w)`` pair); None for ``img_size / feature_map_size``.
        offsets: per layer, the first centre's offset in steps (number or pair); None for 0.5.
        clip_boxes: clip anchors to the image.
        variances: the four values the offsets are divided by.
        matching_type: ``'multi'`` (bipartite, then threshold) or ``'bipartite'`` (only).
        pos_iou_threshold: IoU an anchor needs for a ``'multi'`` match.
        neg_iou_limit: unmatched anchors with an IoU ``>= neg_iou_limit`` become neutral.
        border_pixels: ``'half'``, ``'include'`` or ``'exclude'`` (see `bounding_box_utils`).
        coords: ``'centroids'``, ``'minmax'`` or ``'corners'``: the anchor and offset format.
        normalize_coords: anchors and targets relative to the image size (the model's convention).
        background_id: index of the background class in the class vector.
        output_dtype: float type of the targets. ``'float64'`` (the default) gives the
            original's values exactly; ``'float32'`` (what Keras trains on) gives the same
            values rounded once to float32 (everything is computed in float64) and halves the
            memory, time and inter-process traffic of writing the ~2.3 MB per SSD300 image.

    Example:
        >>> encoder = SSDInputEncoder(300, 300, 20, [[38, 38], [19, 19], [10, 10], [5, 5],
        ...                           [3, 3], [1, 1]], scales=[0.1, 0.2, 0.37, 0.54, 0.71, 0.88,
        ...                           1.05], aspect_ratios_per_layer=[[1.0, 2.0, 0.5]] * 6)
        >>> y = encoder([np.array([[12, 48, 24, 195, 171]])])
        >>> y.shape
        (1, 8732, 33)

    Fixed original bug: with ``normalize_coords=True`` the original applied ``border_pixels``
    after normalising (``'include'`` added a whole image width to every box width and
    ``'exclude'`` gave NaN). Here the border term is applied in pixels, before normalising.
    With ``'half'`` (the default) nothing changes.
    """

    def __init__(
        self,
        img_height: int,
        img_width: int,
        n_classes: int,
        predictor_sizes,
        min_scale: float | None = 0.1,
        max_scale: float | None = 0.9,
        scales: Sequence[float] | None = None,
        aspect_ratios_global: Sequence[float] | None = (0.5, 1.0, 2.0),
        aspect_ratios_per_layer: Sequence[Sequence[float]] | None = None,
        two_boxes_for_ar1: bool = True,
        steps: Sequence | None = None,
        offsets: Sequence | None = None,
        clip_boxes: bool = False,
        variances: Sequence[float] = (0.1, 0.1, 0.2, 0.2),
        matching_type: str = "multi",
        pos_iou_threshold: float = 0.5,
        neg_iou_limit: float = 0.3,
        border_pixels: str = "half",
        coords: str = "centroids",
        normalize_coords: bool = True,
        background_id: int = 0,
        output_dtype: str | np.dtype = "float64",
    ):
        predictor_sizes = _as_predictor_sizes(predictor_sizes)
        _check_options(n_classes, matching_type, coords, border_pixels, background_id)
        variances = _as_variances(variances)
        dtype = _as_float_dtype(output_dtype)
        n_layers = len(predictor_sizes)
        self.layers = resolve_anchor_config(
            n_layers,
            min_scale=min_scale,
            max_scale=max_scale,
            scales=scales,
            aspect_ratios_global=aspect_ratios_global,
            aspect_ratios_per_layer=aspect_ratios_per_layer,
            two_boxes_for_ar1=two_boxes_for_ar1,
            steps=steps,
            offsets=offsets,
        )

        self.img_height = img_height
        self.img_width = img_width
        self.n_classes = int(n_classes) + 1  # + 1 for the background class, as the original
        self.predictor_sizes = predictor_sizes
        self.min_scale = min_scale
        self.max_scale = max_scale
        self.scales = np.array(
            [layer.this_scale for layer in self.layers] + [self.layers[-1].next_scale]
        )
        self.aspect_ratios_global = aspect_ratios_global
        self.aspect_ratios = [list(layer.aspect_ratios) for layer in self.layers]
        self.aspect_ratios_per_layer = aspect_ratios_per_layer
        self.two_boxes_for_ar1 = two_boxes_for_ar1
        self.steps = [layer.this_steps for layer in self.layers]
        self.offsets = [layer.this_offsets for layer in self.layers]
        self.clip_boxes = clip_boxes
        self.variances = variances
        self.matching_type = matching_type
        self.pos_iou_threshold = pos_iou_threshold
        self.neg_iou_limit = neg_iou_limit
        self.border_pixels = border_pixels
        self.coords = coords
        self.normalize_coords = normalize_coords
        self.background_id = int(background_id)
        self.output_dtype = dtype
        self.n_boxes = [layer.n_boxes for layer in self.layers]

        self._build_anchors()
        self._pixel_iou = None
        self._template_row = None

    def _build_anchors(self) -> None:
        """The anchors (per layer and flat) and the `AnchorIoU` that matches against them."""
        # Per layer (fh, fw, n_boxes, 4), in `coords` format: the original's `boxes_list`.
        self.boxes_list = generate_anchors(
            self.img_height,
            self.img_width,
            self.predictor_sizes.tolist(),
            self.layers,
            clip_boxes=self.clip_boxes,
            normalize_coords=self.normalize_coords,
            coords=self.coords,
        )
        self.anchors = np.concatenate([boxes.reshape(-1, 4) for boxes in self.boxes_list])
        # IoUs with the anchors as the original computed them (its iou() converted the anchors
        # back to corners).
        self._grid_shapes = [boxes.shape[:3] for boxes in self.boxes_list]
        self._anchor_iou = AnchorIoU(
            to_corners(self.anchors, self.coords, self.border_pixels),
            self.border_pixels,
            self._grid_shapes,
        )

    @property
    def n_anchors(self) -> int:
        """Number of anchors of the model (the N axis of the targets)."""
        return len(self.anchors)

    def generate_encoding_template(self, batch_size: int, diagnostics: bool = False):
        """The target tensor before matching: zero classes, anchors twice, variances.

        Args:
            batch_size: number of images.
            diagnostics: also return per-layer anchor diagnostics.

        Returns:
            ``(batch_size, n_anchors, n_classes + 1 + 12)`` float64 =
            ``[zeros (n_classes + 1) | anchors | anchors | variances]``. With ``diagnostics``, a
            tuple ``(template, centers, wh, steps, offsets)`` of per-layer lists, as the
            original: anchor centres ``(cy (fh,), cx (fw,))`` in pixels, box sizes
            ``(n_boxes, 2)`` (``w, h``, normalised if ``normalize_coords``), ``(step_h,
            step_w)`` in pixels and ``(offset_h, offset_w)`` in steps.
        """
        batch_size = int(batch_size)
        if batch_size < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}")
        n = self.n_anchors
        template = np.zeros((batch_size, n, self.n_classes + 12), dtype=np.float64)
        template[:, :, -12:-8] = self.anchors
        template[:, :, -8:-4] = self.anchors
        template[:, :, -4:] = self.variances
        if not diagnostics:
            return template
        centers, wh, steps, offsets = [], [], [], []
        for boxes, size, layer in zip(self.boxes_list, self.predictor_sizes, self.layers):
            fh, fw = (int(v) for v in size)
            step_h, step_w = as_hw_pair(
                layer.this_steps, "this_steps", (self.img_height / fh, self.img_width / fw)
            )
            offset_h, offset_w = as_hw_pair(layer.this_offsets, "this_offsets", (0.5, 0.5))
            cy = np.linspace(offset_h * step_h, (offset_h + fh - 1) * step_h, fh)
            cx = np.linspace(offset_w * step_w, (offset_w + fw - 1) * step_w, fw)
            centers.append((cy, cx))
            wh.append(_to_centroids(boxes, self.coords)[0, 0, :, 2:].copy())
            steps.append((step_h, step_w))
            offsets.append((offset_h, offset_w))
        return template, centers, wh, steps, offsets

    def __call__(self, ground_truth_labels, diagnostics: bool = False):
        """Encodes a batch of ground-truth labels.

        Args:
            ground_truth_labels: one array per image of shape ``(k, 5)`` (``k`` may be 0), rows
                ``[class_id, xmin, ymin, xmax, ymax]`` in absolute pixels (`LABEL_FORMAT`), class
                ids in ``1..n_classes``. A ``(batch, k, 5)`` array also works.
            diagnostics: also return the matched anchors.

        Returns:
            ``y_encoded``, ``(batch, n_anchors, n_classes + 1 + 12)`` of ``output_dtype``
            (float64 by default). With
            ``diagnostics``, ``(y_encoded, y_matched_anchors)`` where ``y_matched_anchors`` is
            ``y_encoded`` with the offsets set to 0: each positive anchor's class vector next to
            its own anchor coordinates.

        Raises:
            DegenerateBoxError: a box with ``xmax <= xmin`` or ``ymax <= ymin`` (names the image
                index and the box).
            ValueError: labels of the wrong shape, non-finite values or class ids out of range.
        """
        labels, counts = self._stack_labels(ground_truth_labels)  # (M, 5) float64, (B,)
        batch_size, n_rows = len(counts), len(labels)
        # Writing this tensor is the largest cost left (74 MB for 32 SSD300 images in float64):
        # one broadcast copy of a cached image template, then only the matched rows change.
        y_encoded = np.empty((batch_size, self.n_anchors, self.n_classes + 12), self.output_dtype)
        y_encoded[...] = self._row_template()  # every anchor background, offsets 0
        if n_rows > 0:
            targets, corners, anchor_iou = self._targets_and_iou_inputs(labels)  # (M, 4) each
            image_of_row = np.repeat(np.arange(batch_size), counts)
            if self._sparse_matching_applies(corners, anchor_iou):
                matched = self._match_sparse(corners, image_of_row, anchor_iou)
            else:
                matched = self._match_dense(corners, counts, anchor_iou)
            pos_anchor, pos_row, neutral_image, neutral_anchor = matched
            pos_image = image_of_row[pos_row]
            y_encoded[neutral_image, neutral_anchor, self.background_id] = 0.0
            # Positives: one-hot class and the offsets of their ground truth.
            one_hot = np.eye(self.n_classes)[labels[pos_row, _CLASS_ID].astype(np.int64)]
            y_encoded[pos_image, pos_anchor, : self.n_classes] = one_hot
            y_encoded[pos_image, pos_anchor, -12:-8] = encode_boxes(
                targets[pos_row], self.anchors[pos_anchor], self.variances, self.coords
            )

        if diagnostics:
            y_matched_anchors = y_encoded.copy()
            y_matched_anchors[:, :, -12:-8] = 0.0
            return y_encoded, y_matched_anchors
        return y_encoded

    def _match_dense(self, corners: np.ndarray, counts: np.ndarray, anchor_iou):
        """Matching with each image's dense ``(k, N)`` IoU block (works for any anchors).

        Returns:
            ``(positive anchors, their rows, neutral images, neutral anchors)``, int arrays.
        """
        starts = np.cumsum(counts) - counts
        positives, neutrals = [(np.zeros(0, np.int64),) * 2], [(np.zeros(0, np.int64),) * 2]
        # One image at a time: its (k, N) IoU block stays in the CPU cache.
        for image in np.nonzero(counts)[0]:
            first = starts[image]
            similarities = anchor_iou(corners[first : first + counts[image]])
            pos_anchor, pos_row, neutral_anchor = self._match(similarities)
            positives.append((pos_anchor, pos_row + first))
            neutrals.append((np.full(len(neutral_anchor), image), neutral_anchor))
        pos_anchor, pos_row = (np.concatenate(v).astype(np.int64) for v in zip(*positives))
        neutral_image, neutral_anchor = (np.concatenate(v).astype(np.int64) for v in zip(*neutrals))
        return pos_anchor, pos_row, neutral_image, neutral_anchor

    def _candidate_threshold(self) -> float:
        """The smallest IoU that can make an anchor positive (multi) or neutral."""
        if self.matching_type == "multi":
            return min(self.pos_iou_threshold, self.neg_iou_limit)
        return self.neg_iou_limit

    def _sparse_matching_applies(self, corners: np.ndarray, anchor_iou) -> bool:
        """`_match_sparse` needs a positive threshold, grid anchors and boxes with area > 0."""
        if not (anchor_iou.supports_pairs and self._candidate_threshold() > 0):
            return False
        widths = corners[:, 2] - corners[:, 0] + anchor_iou.d
        heights = corners[:, 3] - corners[:, 1] + anchor_iou.d
        return bool(((widths > 0) & (heights > 0)).all())

    def _match_sparse(self, corners: np.ndarray, image_of_row: np.ndarray, anchor_iou):
        """The same matching as `_match_dense`, from the few pairs with a large enough IoU.

        Only (ground truth, anchor) pairs with IoU ``>= t`` (``t`` = the smallest IoU that makes
        an anchor positive or neutral) decide steps (2) and (3), and they are all found by
        `AnchorIoU.pairs_at_least` without computing the dense ``(M, N)`` IoUs; step (1) is
        `match_bipartite_greedy_sparse` on them.

        Returns:
            ``(positive anchors, their rows, neutral images, neutral anchors)``, int arrays.
        """
        n = self.n_anchors
        threshold = self._candidate_threshold()
        pair_row, pair_anchor, pair_iou = anchor_iou.pairs_at_least(corners, threshold)
        pair_key = image_of_row[pair_row] * n + pair_anchor  # (image, anchor) ids
        # (1) Bipartite: one distinct anchor per ground truth.
        match = match_bipartite_greedy_sparse(
            corners, image_of_row, anchor_iou, (pair_row, pair_anchor, pair_iou), threshold
        )
        bip_row = np.nonzero(match >= 0)[0]
        bip_anchor = match[bip_row]
        taken_keys = image_of_row[bip_row] * n + bip_anchor
        # (2)/(3): each other anchor's best ground truth (first row on ties, as np.argmax).
        pos_row, pos_key = [bip_row], [taken_keys]
        if self.matching_type == "multi":
            multi_row, multi_key = match_multi_pairs(
                pair_row, pair_key, pair_iou, self.pos_iou_threshold, exclude_keys=taken_keys
            )
            pos_row.append(multi_row)
            pos_key.append(multi_key)
        pos_row, pos_key = np.concatenate(pos_row), np.concatenate(pos_key)
        _, neutral = match_multi_pairs(
            pair_row, pair_key, pair_iou, self.neg_iou_limit, exclude_keys=pos_key
        )
        return pos_key % n, pos_row, neutral // n, neutral % n

    def _match(self, similarities: np.ndarray):
        """Matches one image's ground truths to the anchors.

        Args:
            similarities: ``(k, N)`` IoUs of the image's ``k >= 1`` ground truths.

        Returns:
            ``(positive anchors, their ground-truth rows, neutral anchors)``, int arrays.
        """
        # (1) Bipartite: one distinct anchor per ground truth.
        bipartite = match_bipartite_greedy(similarities)
        pos_row = np.nonzero(bipartite >= 0)[0]
        pos_anchor = bipartite[pos_row]
        # (2) Multi: each other anchor's best ground truth (first on ties, as np.argmax).
        if self.matching_type == "multi":
            multi_row, multi_anchor = match_multi(
                similarities, self.pos_iou_threshold, exclude=pos_anchor
            )
            pos_anchor = np.concatenate([pos_anchor, multi_anchor])
            pos_row = np.concatenate([pos_row, multi_row])
        # (3) Neutral: the anchors left whose best IoU reaches neg_iou_limit.
        _, neutral = match_multi(similarities, self.neg_iou_limit, exclude=pos_anchor)
        return pos_anchor, pos_row, neutral

    def _row_template(self) -> np.ndarray:
        """One image's encoding without any ground truth, ``(n_anchors, n_classes + 12)``."""
        if self._template_row is None or self._template_row.dtype != self.output_dtype:
            row = self.generate_encoding_template(1)[0]
            row[:, self.background_id] = 1.0
            row[:, -12:-8] = 0.0  # the anchors encoded against themselves
            self._template_row = row.astype(self.output_dtype)
        return self._template_row

    def _stack_labels(self, ground_truth_labels) -> tuple[np.ndarray, np.ndarray]:
        """Validates the labels; returns them stacked, ``(M, 5)`` float64, and ``(B,)`` counts."""
        if isinstance(ground_truth_labels, np.ndarray) and ground_truth_labels.ndim == 3:
            ground_truth_labels = list(ground_truth_labels)
        per_image = []
        for i, image_labels in enumerate(ground_truth_labels):
            array = np.asarray(image_labels, dtype=np.float64)
            if array.size == 0:
                per_image.append(np.zeros((0, 5)))
                continue
            if array.ndim != 2 or array.shape[1] < 5:
                raise ValueError(
                    f"ground_truth_labels[{i}] must have shape (k, 5) with columns "
                    f"{list(LABEL_FORMAT)}, got shape {array.shape}"
                )
            array = array[:, :5]
            bad = ~np.isfinite(array).all(axis=1)
            if bad.any():
                raise ValueError(
                    f"ground_truth_labels[{i}] box {int(np.argmax(bad))} has a non-finite value: "
                    f"{array[bad][0].tolist()}"
                )
            degenerate = (array[:, _XMAX] <= array[:, _XMIN]) | (array[:, _YMAX] <= array[:, _YMIN])
            if degenerate.any():
                j = int(np.argmax(degenerate))
                raise DegenerateBoxError(
                    f"ground_truth_labels[{i}] box {j} is degenerate (needs xmax > xmin and "
                    f"ymax > ymin): {dict(zip(LABEL_FORMAT, array[j].tolist()))}. Degenerate "
                    "boxes can be removed by DataGenerator.generate(degenerate_box_handling="
                    "'remove')."
                )
            class_ids = array[:, _CLASS_ID]
            bad = (
                (class_ids != np.round(class_ids)) | (class_ids < 0) | (class_ids >= self.n_classes)
            )
            if bad.any():
                j = int(np.argmax(bad))
                raise ValueError(
                    f"ground_truth_labels[{i}] box {j} has class_id {class_ids[j]:g}; class ids "
                    f"must be integers in [1, {self.n_classes - 1}]"
                )
            per_image.append(array)
        counts = np.array([len(a) for a in per_image], dtype=np.int64)
        labels = np.concatenate(per_image) if per_image else np.zeros((0, 5))
        return labels, counts

    def _targets_and_iou_inputs(self, labels: np.ndarray):
        """Ground truths in the target format, the corners to match, and the IoU function.

        Returns:
            ``(M, 4)`` boxes in ``coords`` format (normalised if ``normalize_coords``), ``(M, 4)``
            corners, and an `AnchorIoU` that gives their ``(k, N)`` IoUs with the anchors.
        """
        boxes = labels[:, [_XMIN, _YMIN, _XMAX, _YMAX]]  # (M, 4) corners, pixels
        if self.normalize_coords and self.border_pixels != "half":
            # The fix: the border term is a pixel, so apply it before normalising.
            targets = _from_corners(boxes, self.coords, self.border_pixels)
            targets = _normalize(targets, self.coords, self.img_height, self.img_width)
            if self._pixel_iou is None:
                corners = to_corners(self.anchors, self.coords, "half")
                corners = _denormalize_corners(corners, self.img_height, self.img_width)
                self._pixel_iou = AnchorIoU(corners, self.border_pixels, self._grid_shapes)
            return targets, boxes, self._pixel_iou
        # The original's order of operations: normalise the corners, convert them to `coords`,
        # and let iou() convert both sides back to corners. Same float64 operations, so the
        # same IoUs bit for bit (ties included).
        if self.normalize_coords:
            boxes = boxes.copy()
            boxes[:, [1, 3]] /= self.img_height
            boxes[:, [0, 2]] /= self.img_width
        targets = _from_corners(boxes, self.coords, self.border_pixels)
        corners = to_corners(targets, self.coords, self.border_pixels)
        return targets, corners, self._anchor_iou


def _as_predictor_sizes(predictor_sizes) -> np.ndarray:
    """``(n_layers, 2)`` int64 ``(height, width)`` pairs (one pair alone is one layer)."""
    predictor_sizes = np.asarray(predictor_sizes, dtype=np.int64)
    if predictor_sizes.ndim == 1:
        predictor_sizes = predictor_sizes[None, :]
    if predictor_sizes.ndim != 2 or predictor_sizes.shape[1] != 2:
        raise ValueError(
            f"predictor_sizes must be a list of (height, width) pairs, got {predictor_sizes!r}"
        )
    return predictor_sizes


def _check_options(n_classes, matching_type, coords, border_pixels, background_id) -> None:
    """ValueErrors naming the argument and the value for `SSDInputEncoder`'s options."""
    if int(n_classes) < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes!r}")
    if matching_type not in ("multi", "bipartite"):
        raise ValueError(f"matching_type must be 'multi' or 'bipartite', got {matching_type!r}")
    check_coords(coords)
    border_offset(border_pixels)  # validates
    if not 0 <= int(background_id) <= int(n_classes):
        raise ValueError(f"background_id must be in [0, {n_classes}], got {background_id!r}")


def _as_variances(variances) -> np.ndarray:
    """``(4,)`` float64 positive variances."""
    variances = np.asarray(variances, dtype=np.float64)
    if variances.shape != (4,) or np.any(variances <= 0):
        raise ValueError(f"variances must be 4 positive numbers, got {list(variances)}")
    return variances


def _as_float_dtype(output_dtype) -> np.dtype:
    """The numpy float dtype ``output_dtype`` names."""
    try:
        dtype = np.dtype(output_dtype)
    except TypeError:
        dtype = None
    if dtype is None or not np.issubdtype(dtype, np.floating):
        raise ValueError(
            f"output_dtype must be a float type such as 'float32' or 'float64', got "
            f"{output_dtype!r}"
        )
    return dtype


def _from_corners(boxes: np.ndarray, coords: str, border_pixels: str) -> np.ndarray:
    if coords == "corners":
        return boxes
    return convert_coordinates(boxes, 0, f"corners2{coords}", border_pixels=border_pixels)


def _to_centroids(boxes: np.ndarray, coords: str) -> np.ndarray:
    if coords == "centroids":
        return boxes
    return convert_coordinates(boxes, 0, f"{coords}2centroids")


def _normalize(boxes: np.ndarray, coords: str, img_height: int, img_width: int) -> np.ndarray:
    boxes = boxes.copy()
    x_cols = {"centroids": [0, 2], "corners": [0, 2], "minmax": [0, 1]}[coords]
    y_cols = {"centroids": [1, 3], "corners": [1, 3], "minmax": [2, 3]}[coords]
    boxes[:, x_cols] /= img_width
    boxes[:, y_cols] /= img_height
    return boxes


def _denormalize_corners(corners: np.ndarray, img_height: int, img_width: int) -> np.ndarray:
    corners = corners.copy()
    corners[:, [0, 2]] *= img_width
    corners[:, [1, 3]] *= img_height
    return corners
