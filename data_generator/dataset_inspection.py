"""What a detection dataset holds, in the pixels the model sees (numpy; no Keras).

`collect_boxes` gathers every ground-truth box of a `DataGenerator` and scales it to the model's
input size the way the training recipes resize images (each axis on its own, as `Resize`);
`box_statistics` summarises them: boxes and images per class, images without boxes, and the
distributions of box width, height, aspect ratio (w / h) and area, overall, per class and per
size bucket. Size buckets are COCO's area thresholds (small < 32**2 <= medium < 96**2 <= large),
applied to the area in input pixels, which is what the anchors have to cover.

Example:
    >>> boxes = collect_boxes(dataset, input_size=(300, 480))
    >>> stats = box_statistics(boxes, classes=["background", "RBC", "WBC", "Platelets"])
    >>> stats["per_class"]["RBC"]["boxes"]
"""

from __future__ import annotations

import dataclasses

import numpy as np

# COCO's size buckets: (name, lowest area, highest area), areas in (input) pixels.
SIZE_BUCKETS = (("small", 0.0, 32.0**2), ("medium", 32.0**2, 96.0**2), ("large", 96.0**2, np.inf))
_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


@dataclasses.dataclass
class DatasetBoxes:
    """Every ground-truth box of a dataset, scaled to the model input.

    Attributes:
        image_ids: ``(n_images,)`` ids (or file names) of the images.
        image_sizes: ``(n_images, 2)`` original ``(height, width)`` of each image.
        input_size: ``(height, width)`` the boxes were scaled to, or None (original pixels).
        box_image: ``(n_boxes,)`` index into ``image_ids`` of each box.
        class_ids: ``(n_boxes,)`` class id of each box (1..n_classes).
        boxes: ``(n_boxes, 4)`` corners ``(xmin, ymin, xmax, ymax)`` in input pixels.
        eval_neutral: ``(n_boxes,)`` True for boxes marked difficult.
    """

    image_ids: list
    image_sizes: np.ndarray
    input_size: tuple | None
    box_image: np.ndarray
    class_ids: np.ndarray
    boxes: np.ndarray
    eval_neutral: np.ndarray

    @property
    def widths(self) -> np.ndarray:
        return self.boxes[:, 2] - self.boxes[:, 0]

    @property
    def heights(self) -> np.ndarray:
        return self.boxes[:, 3] - self.boxes[:, 1]

    @property
    def areas(self) -> np.ndarray:
        return self.widths * self.heights

    @property
    def aspect_ratios(self) -> np.ndarray:
        """``w / h``; 0-height boxes give inf (they are reported, not hidden)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.widths / self.heights

    def labels_per_image(self) -> list[np.ndarray]:
        """One ``(k, 5)`` array ``(class_id, xmin, ymin, xmax, ymax)`` per image, input pixels."""
        rows = np.concatenate([self.class_ids[:, None].astype(np.float64), self.boxes], axis=1)
        order = np.argsort(self.box_image, kind="stable")
        counts = np.bincount(self.box_image, minlength=len(self.image_ids))
        return np.split(rows[order], np.cumsum(counts)[:-1])


def image_size(path) -> tuple[int, int]:
    """``(height, width)`` of an image file, from its header when Pillow can read it."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            width, height = image.size
        return int(height), int(width)
    except Exception:  # not a format Pillow knows: decode it fully
        from data_generator.image_io import read_image

        return tuple(int(v) for v in read_image(path).shape[:2])


def collect_boxes(dataset, input_size=None, progress: bool = False) -> DatasetBoxes:
    """The boxes of a labelled `DataGenerator`, scaled to ``input_size``.

    Args:
        dataset: a `DataGenerator` with labels (parsed with ``parse_xml``/``parse_csv``/
            ``parse_json``, or loaded with images).
        input_size: ``(height, width)`` of the model input: boxes are scaled by
            ``input / image`` per axis, as `Resize` does in the training recipes. None keeps
            original pixels.
        progress: a tqdm progress bar over the images (image headers are read for the sizes).

    Returns:
        A `DatasetBoxes`.
    """
    if dataset.labels is None:
        raise ValueError("the dataset has no labels (parse it with ground truth)")
    fmt = dataset.labels_format
    n_images = dataset.get_dataset_size()
    indices = range(n_images)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="reading image sizes", unit="image")
    sizes = np.zeros((n_images, 2), dtype=np.int64)
    box_image, class_ids, boxes, neutral = [], [], [], []
    for i in indices:
        if dataset.images is not None:
            sizes[i] = dataset.images[i].shape[:2]
        else:
            sizes[i] = image_size(dataset.filenames[i])
        labels = np.asarray(dataset.labels[i], dtype=np.float64).reshape(-1, len(fmt))
        corners = labels[:, [fmt["xmin"], fmt["ymin"], fmt["xmax"], fmt["ymax"]]].copy()
        if input_size is not None:
            height, width = sizes[i]
            corners[:, [0, 2]] *= input_size[1] / width
            corners[:, [1, 3]] *= input_size[0] / height
        box_image.append(np.full(len(labels), i, dtype=np.int64))
        class_ids.append(labels[:, fmt["class_id"]].astype(np.int64))
        boxes.append(corners)
        flags = np.zeros(len(labels), dtype=bool)
        if dataset.eval_neutral is not None and dataset.eval_neutral[i] is not None:
            flags = np.asarray(dataset.eval_neutral[i], dtype=bool).reshape(-1)[: len(labels)]
        neutral.append(flags)
    ids = dataset.image_ids if dataset.image_ids is not None else dataset.filenames
    return DatasetBoxes(
        image_ids=[str(v) for v in (ids if ids is not None else range(n_images))],
        image_sizes=sizes,
        input_size=None if input_size is None else tuple(int(v) for v in input_size),
        box_image=np.concatenate(box_image) if box_image else np.zeros(0, np.int64),
        class_ids=np.concatenate(class_ids) if class_ids else np.zeros(0, np.int64),
        boxes=np.concatenate(boxes) if boxes else np.zeros((0, 4)),
        eval_neutral=np.concatenate(neutral) if neutral else np.zeros(0, bool),
    )


def size_buckets(areas: np.ndarray) -> np.ndarray:
    """COCO size bucket name (``'small'``, ``'medium'``, ``'large'``) of each area."""
    areas = np.asarray(areas, dtype=np.float64)
    names = np.empty(areas.shape, dtype=object)
    for name, low, high in SIZE_BUCKETS:
        names[(areas >= low) & (areas < high)] = name
    return names


def distribution(values: np.ndarray) -> dict:
    """Count, mean and quantiles (0, 5, 25, 50, 75, 95, 100 %) of the finite ``values``."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    result = {"count": int(values.size), "non_finite": int(values.size - finite.size)}
    if finite.size == 0:
        return result
    quantiles = np.quantile(finite, _QUANTILES)
    result["mean"] = float(finite.mean())
    for q, value in zip(_QUANTILES, quantiles):
        result[f"p{int(round(q * 100))}"] = float(value)
    return result


def box_statistics(boxes: DatasetBoxes, classes=None) -> dict:
    """Counts and box-shape distributions of a dataset (a JSON-able dict).

    Args:
        boxes: from `collect_boxes`.
        classes: class names, background first (``classes[i]`` names class id ``i``); None names
            classes by their ids.

    Returns:
        ``{"n_images", "n_boxes", "images_without_boxes": [ids], "per_class": {name: {"boxes",
        "images", "difficult"}}, "size_buckets": {name: count}, "width", "height",
        "aspect_ratio", "area": distributions, "per_class_shapes": {name: {...}}}`` where a
        distribution is `distribution`'s dict. Sizes are in input pixels when ``boxes`` was
        collected with an ``input_size``.
    """

    def name(class_id: int) -> str:
        if classes is not None and 0 <= class_id < len(classes):
            return str(classes[class_id])
        return str(class_id)

    n_images = len(boxes.image_ids)
    per_image = np.bincount(boxes.box_image, minlength=n_images)
    buckets = size_buckets(boxes.areas)
    class_list = sorted(set(boxes.class_ids.tolist()) | set(range(1, len(classes or []))))
    per_class, shapes = {}, {}
    for class_id in class_list:
        mask = boxes.class_ids == class_id
        per_class[name(class_id)] = {
            "boxes": int(mask.sum()),
            "images": int(len(np.unique(boxes.box_image[mask]))),
            "difficult": int(boxes.eval_neutral[mask].sum()),
            "size_buckets": {b: int((buckets[mask] == b).sum()) for b, _, _ in SIZE_BUCKETS},
        }
        shapes[name(class_id)] = {
            "width": distribution(boxes.widths[mask]),
            "height": distribution(boxes.heights[mask]),
            "aspect_ratio": distribution(boxes.aspect_ratios[mask]),
        }
    return {
        "n_images": n_images,
        "n_boxes": int(len(boxes.boxes)),
        "input_size": None if boxes.input_size is None else list(boxes.input_size),
        "boxes_per_image": distribution(per_image),
        "images_without_boxes": [boxes.image_ids[i] for i in np.flatnonzero(per_image == 0)],
        "per_class": per_class,
        "size_buckets": {b: int((buckets == b).sum()) for b, _, _ in SIZE_BUCKETS},
        "width": distribution(boxes.widths),
        "height": distribution(boxes.heights),
        "aspect_ratio": distribution(boxes.aspect_ratios),
        "area": distribution(boxes.areas),
        "per_class_shapes": shapes,
    }
