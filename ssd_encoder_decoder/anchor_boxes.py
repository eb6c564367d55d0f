"""The one SSD anchor-box generator (numpy).

Every part of ssd-keras that needs anchors calls this module: the ``AnchorBoxes`` Keras layer,
``SSDInputEncoder`` and the model builders (boxes per location). The semantics are Caffe SSD's,
as in the original ssd_keras:

- the box size base is ``min(img_height, img_width)``;
- aspect ratio 1 gives a box of side ``scale * size`` and, with ``two_boxes_for_ar1``, a second
  one of side ``sqrt(scale * next_scale) * size`` right after it; any other ratio ``ar`` gives
  ``w = scale * size * sqrt(ar)``, ``h = scale * size / sqrt(ar)``, in the order given;
- ``steps`` default to ``img_size / feature_map_size`` per axis, ``offsets`` to 0.5 (of a step);
  centres are ``linspace(offset * step, (offset + f - 1) * step, f)``;
- boxes are clipped to the image (if asked), then normalised (if asked), then converted to
  ``coords``.

Anchor order inside one layer: row-major over the feature map (y, then x), then the boxes of a
cell in aspect-ratio order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bounding_box_utils.bounding_box_utils import check_coords, convert_coordinates


def n_boxes_per_location(aspect_ratios: Sequence[float], two_boxes_for_ar1: bool = True) -> int:
    """Number of anchors per feature-map cell for one predictor layer.

    Args:
        aspect_ratios: the layer's aspect ratios (w / h).
        two_boxes_for_ar1: whether ratio 1 gets a second, larger box.

    Returns:
        ``len(aspect_ratios)``, plus one if 1 is among the ratios and ``two_boxes_for_ar1``.
    """
    ratios = [float(ar) for ar in aspect_ratios]
    return len(ratios) + int(bool(two_boxes_for_ar1) and 1.0 in ratios)


def as_hw_pair(value, name: str, default) -> tuple[float, float]:
    """``value`` as a ``(height, width)`` pair of floats; scalars apply to both axes."""
    if value is None:
        return default
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return float(array), float(array)
    if array.shape == (2,):
        return float(array[0]), float(array[1])
    raise ValueError(f"{name} must be a number or a (height, width) pair, got {value!r}")


def anchor_box_sizes(
    img_height: int,
    img_width: int,
    this_scale: float,
    next_scale: float,
    aspect_ratios: Sequence[float],
    two_boxes_for_ar1: bool = True,
) -> np.ndarray:
    """Widths and heights (pixels) of one layer's anchors, in box order.

    Returns:
        ``(n_boxes, 2)`` array of ``(w, h)``.
    """
    size = min(img_height, img_width)
    sizes = []
    for ar in aspect_ratios:
        ar = float(ar)
        if ar <= 0:
            raise ValueError(f"aspect ratios must be positive, got {ar}")
        if ar == 1.0:
            side = this_scale * size
            sizes.append((side, side))
            if two_boxes_for_ar1:
                side = np.sqrt(this_scale * next_scale) * size
                sizes.append((side, side))
        else:
            sizes.append((this_scale * size * np.sqrt(ar), this_scale * size / np.sqrt(ar)))
    return np.array(sizes, dtype=np.float64).reshape(-1, 2)


def clip_to_image(corners: np.ndarray, img_height: float, img_width: float) -> np.ndarray:
    """Clips ``'corners'`` boxes (pixels) to the image in place, exactly as the original.

    An x coordinate ``>= img_width`` becomes ``img_width - 1`` and one ``< 0`` becomes 0 (y
    likewise with ``img_height``). A value in ``[img_width - 1, img_width)`` is left as it is, so
    this is not ``np.clip(x, 0, img_width - 1)``: e.g. 299.5 stays 299.5 in a 300-wide image.

    Args:
        corners: ``(..., 4)`` boxes ``(xmin, ymin, xmax, ymax)`` in pixels, modified in place.
        img_height: image height in pixels.
        img_width: image width in pixels.

    Returns:
        ``corners``.
    """
    for columns, size in (([0, 2], img_width), ([1, 3], img_height)):
        values = corners[..., columns]
        values[values >= size] = size - 1
        values[values < 0] = 0
        corners[..., columns] = values
    return corners


def generate_anchor_boxes_for_layer(
    img_height: int,
    img_width: int,
    feature_map_size: Sequence[int],
    this_scale: float,
    next_scale: float,
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    two_boxes_for_ar1: bool = True,
    this_steps=None,
    this_offsets=None,
    clip_boxes: bool = False,
    normalize_coords: bool = True,
    coords: str = "centroids",
) -> np.ndarray:
    """Anchor boxes of one predictor layer.

    Args:
        img_height: model input height in pixels.
        img_width: model input width in pixels.
        feature_map_size: ``(fh, fw)`` of the predictor layer.
        this_scale: this layer's scale, a fraction of ``min(img_height, img_width)``.
        next_scale: the next layer's scale (only used for the second ratio-1 box).
        aspect_ratios: box aspect ratios (w / h), in output order.
        two_boxes_for_ar1: whether ratio 1 gets a second box of side ``sqrt(s * s_next) * size``.
        this_steps: distance between neighbouring centres in pixels: a number, a ``(h, w)`` pair, or
            None for ``img_size / feature_map_size``.
        this_offsets: offset of the first centre from the image's top-left corner, in steps: a
            number, a ``(h, w)`` pair, or None for 0.5.
        clip_boxes: clip boxes to the image as the original does (see `clip_to_image`).
        normalize_coords: divide x coordinates by ``img_width`` and y by ``img_height``.
        coords: output format, ``'centroids'``, ``'minmax'`` or ``'corners'``.

    Returns:
        ``(fh, fw, n_boxes, 4)`` float64 anchors in ``coords`` format.

    Example:
        >>> a = generate_anchor_boxes_for_layer(300, 300, (38, 38), 0.1, 0.2, [1.0, 2.0, 0.5],
        ...                                     this_steps=8, this_offsets=0.5)
        >>> a.shape
        (38, 38, 4, 4)
    """
    check_coords(coords)
    fh, fw = (int(v) for v in feature_map_size)
    if fh <= 0 or fw <= 0:
        raise ValueError(f"feature_map_size must be positive, got {tuple(feature_map_size)}")
    sizes = anchor_box_sizes(
        img_height, img_width, this_scale, next_scale, aspect_ratios, two_boxes_for_ar1
    )
    n_boxes = len(sizes)
    step_h, step_w = as_hw_pair(this_steps, "this_steps", (img_height / fh, img_width / fw))
    offset_h, offset_w = as_hw_pair(this_offsets, "this_offsets", (0.5, 0.5))

    cy = np.linspace(offset_h * step_h, (offset_h + fh - 1) * step_h, fh)
    cx = np.linspace(offset_w * step_w, (offset_w + fw - 1) * step_w, fw)
    cx_grid, cy_grid = np.meshgrid(cx, cy)  # (fh, fw) each

    boxes = np.empty((fh, fw, n_boxes, 4), dtype=np.float64)
    boxes[..., 0] = cx_grid[..., None]
    boxes[..., 1] = cy_grid[..., None]
    boxes[..., 2] = sizes[:, 0]
    boxes[..., 3] = sizes[:, 1]
    boxes = convert_coordinates(boxes, 0, "centroids2corners")

    if clip_boxes:
        clip_to_image(boxes, img_height, img_width)
    if normalize_coords:
        boxes[..., [0, 2]] /= img_width
        boxes[..., [1, 3]] /= img_height
    if coords == "centroids":
        boxes = convert_coordinates(boxes, 0, "corners2centroids")
    elif coords == "minmax":
        boxes = convert_coordinates(boxes, 0, "corners2minmax")
    return boxes


@dataclass(frozen=True)
class PredictorLayerAnchors:
    """Anchor parameters of one predictor layer, as resolved by `resolve_anchor_config`."""

    this_scale: float
    next_scale: float
    aspect_ratios: tuple[float, ...]
    two_boxes_for_ar1: bool
    this_steps: object
    this_offsets: object

    @property
    def n_boxes(self) -> int:
        return n_boxes_per_location(self.aspect_ratios, self.two_boxes_for_ar1)


# The model-level anchor arguments `resolve_anchor_config` takes (the original API's names).
ANCHOR_CONFIG_KEYS = (
    "min_scale",
    "max_scale",
    "scales",
    "aspect_ratios_global",
    "aspect_ratios_per_layer",
    "two_boxes_for_ar1",
    "steps",
    "offsets",
)


def resolve_anchor_config(
    n_predictor_layers: int,
    min_scale: float | None = 0.1,
    max_scale: float | None = 0.9,
    scales: Sequence[float] | None = None,
    aspect_ratios_global: Sequence[float] | None = (0.5, 1.0, 2.0),
    aspect_ratios_per_layer: Sequence[Sequence[float]] | None = None,
    two_boxes_for_ar1: bool = True,
    steps: Sequence | None = None,
    offsets: Sequence | None = None,
) -> list[PredictorLayerAnchors]:
    """Per-layer anchor parameters from the model-level arguments of the original API.

    ``scales`` (``n_predictor_layers + 1`` values; the last one only feeds the second ratio-1 box of
    the last layer) win over ``min_scale``/``max_scale``, which give ``linspace(min, max, n + 1)``.
    ``aspect_ratios_per_layer`` wins over ``aspect_ratios_global``.

    Returns:
        One `PredictorLayerAnchors` per predictor layer.
    """
    n = int(n_predictor_layers)
    if n <= 0:
        raise ValueError(f"n_predictor_layers must be positive, got {n_predictor_layers!r}")
    if scales is None:
        if min_scale is None or max_scale is None:
            raise ValueError(
                "give either scales or both min_scale and max_scale, got "
                f"scales=None, min_scale={min_scale!r}, max_scale={max_scale!r}"
            )
        if not 0 < min_scale <= max_scale:
            raise ValueError(
                f"need 0 < min_scale <= max_scale, got min_scale={min_scale!r}, "
                f"max_scale={max_scale!r}"
            )
        scales = np.linspace(min_scale, max_scale, n + 1)
    scales = [float(s) for s in scales]
    if len(scales) != n + 1:
        raise ValueError(
            f"scales must have n_predictor_layers + 1 = {n + 1} values, got {len(scales)}: {scales}"
        )
    if any(s <= 0 for s in scales):
        raise ValueError(f"scales must all be positive, got {scales}")

    if aspect_ratios_per_layer is not None:
        if len(aspect_ratios_per_layer) != n:
            raise ValueError(
                f"aspect_ratios_per_layer must have {n} entries (one per predictor layer), "
                f"got {len(aspect_ratios_per_layer)}"
            )
        ratios = [tuple(float(ar) for ar in layer) for layer in aspect_ratios_per_layer]
    elif aspect_ratios_global is not None:
        ratios = [tuple(float(ar) for ar in aspect_ratios_global)] * n
    else:
        raise ValueError("give aspect_ratios_global or aspect_ratios_per_layer (both are None)")

    steps = _per_layer(steps, n, "steps")
    offsets = _per_layer(offsets, n, "offsets")
    return [
        PredictorLayerAnchors(
            this_scale=scales[i],
            next_scale=scales[i + 1],
            aspect_ratios=ratios[i],
            two_boxes_for_ar1=bool(two_boxes_for_ar1),
            this_steps=steps[i],
            this_offsets=offsets[i],
        )
        for i in range(n)
    ]


def _per_layer(values, n: int, name: str) -> list:
    if values is None:
        return [None] * n
    if len(values) != n:
        raise ValueError(f"{name} must have {n} entries (one per predictor layer), got {values!r}")
    return list(values)


def generate_anchors(
    img_height: int,
    img_width: int,
    predictor_sizes: Sequence[Sequence[int]],
    layers: Sequence[PredictorLayerAnchors],
    clip_boxes: bool = False,
    normalize_coords: bool = True,
    coords: str = "centroids",
) -> list[np.ndarray]:
    """Anchors of every predictor layer.

    Args:
        img_height: model input height in pixels.
        img_width: model input width in pixels.
        predictor_sizes: ``(fh, fw)`` of each predictor layer.
        layers: per-layer parameters, e.g. from `resolve_anchor_config`.
        clip_boxes, normalize_coords, coords: as in `generate_anchor_boxes_for_layer`.

    Returns:
        One ``(fh, fw, n_boxes, 4)`` array per layer. ``np.concatenate([a.reshape(-1, 4) for a in
        result])`` gives the model's ``(n_anchors, 4)`` anchors in output order.
    """
    if len(predictor_sizes) != len(layers):
        raise ValueError(
            f"predictor_sizes has {len(predictor_sizes)} entries but there are {len(layers)} "
            "predictor layers"
        )
    return [
        generate_anchor_boxes_for_layer(
            img_height,
            img_width,
            feature_map_size=size,
            this_scale=layer.this_scale,
            next_scale=layer.next_scale,
            aspect_ratios=layer.aspect_ratios,
            two_boxes_for_ar1=layer.two_boxes_for_ar1,
            this_steps=layer.this_steps,
            this_offsets=layer.this_offsets,
            clip_boxes=clip_boxes,
            normalize_coords=normalize_coords,
            coords=coords,
        )
        for size, layer in zip(predictor_sizes, layers)
    ]
