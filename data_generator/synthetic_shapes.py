"""A small, seeded Pascal-VOC-format dataset of drawn shapes: the default data for demos and tests.

`make_synthetic_dataset` draws filled shapes of five classes (circle, square, triangle, cross,
diamond; each with its own colour family) of varied sizes on textured backgrounds, and writes

```
<out_dir>/JPEGImages/<id>.jpg         RGB images, JPEG quality 95
<out_dir>/Annotations/<id>.xml        Pascal VOC XML (size, objects with truncated/difficult)
<out_dir>/ImageSets/Main/train.txt    ids, one per line (also trainval.txt = train, test.txt)
<out_dir>/classes.txt                 the class names, background first (= ``classes`` for
                                      DataGenerator.parse_xml)
```

Boxes are the tight extent of the drawn pixels in continuous coordinates: a shape covering
columns ``c0..c1`` gets ``xmin = c0``, ``xmax = c1 + 1`` (so ``xmax - xmin`` is its width in
pixels, the ``border_pixels='half'`` convention). Objects whose smaller box side is under
``difficult_size`` pixels are marked ``<difficult>1``; about one object in ten is allowed to
leave the image, and is then clipped and marked ``<truncated>1``. About one image in twenty has
no object. The same arguments give the same files.

Run from the command line: ``python -m data_generator.synthetic_shapes OUT_DIR --n-train 200``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

import cv2
import numpy as np

SHAPE_CLASSES = ("background", "circle", "square", "triangle", "cross", "diamond")

# Base RGB colour of each class (index = class id); each object jitters it a little.
_CLASS_COLOURS = {
    1: (225, 45, 45),  # circle: red
    2: (40, 175, 70),  # square: green
    3: (45, 85, 225),  # triangle: blue
    4: (235, 200, 30),  # cross: yellow
    5: (175, 60, 205),  # diamond: purple
}


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A low-contrast textured background: smooth colour noise, stripes and grain."""
    base = rng.uniform(90, 170, size=3)
    grey = base.mean()
    base = grey + 0.35 * (base - grey)  # mostly desaturated, so the shapes stand out
    coarse = rng.normal(0, 18, size=(rng.integers(3, 7), rng.integers(3, 7), 3))
    smooth = cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(6, 24)
    stripes = 8 * np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 2 * np.pi / period)
    grain = rng.normal(0, 5, size=(height, width, 3))
    image = base + smooth + stripes[:, :, None] + grain
    return np.clip(image, 0, 255).astype(np.uint8)


def _shape_points(class_id: int, cx: float, cy: float, size: float, angle: float) -> np.ndarray:
    """Polygon vertices (float, pixels) of a polygonal class centred on (cx, cy)."""
    r = size / 2
    if class_id == 2:  # square, axis-aligned
        unit = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
        return np.array([cx, cy]) + r * unit
    if class_id == 3:  # triangle, pointing up, slightly rotated
        angles = angle + np.array([-np.pi / 2, np.pi / 6, 5 * np.pi / 6])
        return np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1)
    if class_id == 4:  # cross (plus sign), arms a third of the size thick
        t = 1 / 3
        unit = np.array(
            [
                [-t, -1],
                [t, -1],
                [t, -t],
                [1, -t],
                [1, t],
                [t, t],
                [t, 1],
                [-t, 1],
                [-t, t],
                [-1, t],
                [-1, -t],
                [-t, -t],
            ]
        )
        return np.array([cx, cy]) + r * unit
    if class_id == 5:  # diamond (square on its corner, a bit elongated)
        unit = np.array([[0, -1], [0.7, 0], [0, 1], [-0.7, 0]])
        return np.array([cx, cy]) + r * unit
    raise ValueError(f"class {class_id} is not polygonal")


def _draw_object(
    image: np.ndarray, class_id: int, cx: float, cy: float, size: float, angle: float, colour
) -> tuple[int, int, int, int] | None:
    """Draws one filled shape; returns its tight box (xmin, ymin, xmax, ymax) inside the image."""
    height, width = image.shape[:2]
    mask = np.zeros((height, width), dtype=np.uint8)
    shift = 4  # sub-pixel precision of the drawing (coordinates in 1/16 pixel)
    scale = 1 << shift
    if class_id == 1:
        center = (int(round(cx * scale)), int(round(cy * scale)))
        cv2.circle(mask, center, int(round(size / 2 * scale)), 255, -1, cv2.LINE_8, shift)
    else:
        points = np.round(_shape_points(class_id, cx, cy, size, angle) * scale).astype(np.int32)
        cv2.fillPoly(mask, [points], 255, cv2.LINE_8, shift)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return None
    image[mask > 0] = colour
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _overlap(a, b) -> float:
    """Intersection over the smaller box's area (1 when one box contains the other)."""
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / smaller if smaller > 0 else 0.0


def draw_synthetic_image(
    rng: np.random.Generator,
    image_size: tuple[int, int] = (240, 320),
    max_objects: int = 5,
    min_size: float = 0.08,
    max_size: float = 0.45,
    difficult_size: int = 14,
    empty_probability: float = 0.05,
    truncated_probability: float = 0.1,
) -> tuple[np.ndarray, list[dict]]:
    """Draws one image and its objects.

    Args:
        rng: the random generator (all randomness comes from it).
        image_size: `(height, width)`.
        max_objects: at most this many objects (at least one unless the image is empty).
        min_size, max_size: object size range as fractions of ``min(height, width)``.
        difficult_size: objects with a smaller box side under this many pixels are difficult.
        empty_probability: probability of an image without objects.
        truncated_probability: probability that an object may leave the image.

    Returns:
        ``(image, objects)``: image `(height, width, 3)` uint8 RGB; objects a list of dicts
        with ``class_id``, ``name``, ``box`` (xmin, ymin, xmax, ymax), ``truncated``,
        ``difficult``.
    """
    height, width = image_size
    image = _background(rng, height, width)
    objects: list[dict] = []
    if rng.uniform() < empty_probability:
        return image, objects
    n_objects = int(rng.integers(1, max_objects + 1))
    short = min(height, width)
    for _ in range(n_objects):
        for _attempt in range(20):
            class_id = int(rng.integers(1, len(SHAPE_CLASSES)))
            size = float(rng.uniform(min_size, max_size) * short)
            may_leave = rng.uniform() < truncated_probability
            margin = -size * 0.3 if may_leave else size / 2 + 1
            if width - 2 * margin <= 0 or height - 2 * margin <= 0:
                continue
            cx = float(rng.uniform(margin, width - margin))
            cy = float(rng.uniform(margin, height - margin))
            angle = float(rng.uniform(-0.3, 0.3))
            r = size / 2
            rough = (cx - r, cy - r, cx + r, cy + r)
            if any(_overlap(rough, other["rough"]) > 0.15 for other in objects):
                continue
            colour = np.clip(np.array(_CLASS_COLOURS[class_id]) + rng.normal(0, 12, 3), 0, 255)
            box = _draw_object(image, class_id, cx, cy, size, angle, colour.astype(np.uint8))
            if box is None or box[2] - box[0] < 3 or box[3] - box[1] < 3:
                continue
            truncated = int(rough[0] < 0 or rough[1] < 0 or rough[2] > width or rough[3] > height)
            difficult = int(min(box[2] - box[0], box[3] - box[1]) < difficult_size)
            objects.append(
                {
                    "class_id": class_id,
                    "name": SHAPE_CLASSES[class_id],
                    "box": box,
                    "truncated": truncated,
                    "difficult": difficult,
                    "rough": rough,
                }
            )
            break
    # Later shapes may cover earlier ones: recompute nothing, but drop objects that were hidden
    # almost completely, so that every label points at a visible shape.
    visible = []
    for k, obj in enumerate(objects):
        covered = any(_overlap(obj["rough"], later["rough"]) > 0 for later in objects[k + 1 :])
        if covered and not _mostly_visible(image, obj):
            continue
        visible.append({key: value for key, value in obj.items() if key != "rough"})
    return image, visible


def _mostly_visible(image: np.ndarray, obj: dict) -> bool:
    """True when at least half of the box still shows the object's colour family."""
    xmin, ymin, xmax, ymax = obj["box"]
    patch = image[ymin:ymax, xmin:xmax].astype(np.int32)
    target = np.array(_CLASS_COLOURS[obj["class_id"]])
    close = np.abs(patch - target).max(axis=2) < 60
    return close.mean() >= 0.3


def _annotation_xml(image_id: str, image_size, objects) -> bytes:
    height, width = image_size
    root = ElementTree.Element("annotation")
    ElementTree.SubElement(root, "folder").text = "JPEGImages"
    ElementTree.SubElement(root, "filename").text = f"{image_id}.jpg"
    source = ElementTree.SubElement(root, "source")
    ElementTree.SubElement(source, "database").text = "ssd-keras synthetic shapes"
    size = ElementTree.SubElement(root, "size")
    ElementTree.SubElement(size, "width").text = str(width)
    ElementTree.SubElement(size, "height").text = str(height)
    ElementTree.SubElement(size, "depth").text = "3"
    ElementTree.SubElement(root, "segmented").text = "0"
    for obj in objects:
        node = ElementTree.SubElement(root, "object")
        ElementTree.SubElement(node, "name").text = obj["name"]
        ElementTree.SubElement(node, "pose").text = "Unspecified"
        ElementTree.SubElement(node, "truncated").text = str(obj["truncated"])
        ElementTree.SubElement(node, "difficult").text = str(obj["difficult"])
        bndbox = ElementTree.SubElement(node, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), obj["box"]):
            ElementTree.SubElement(bndbox, key).text = str(value)
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="utf-8")


def make_synthetic_dataset(
    out_dir: str | os.PathLike,
    n_train: int = 200,
    n_test: int = 50,
    image_size: Sequence[int] = (240, 320),
    seed: int = 0,
    *,
    max_objects: int = 5,
    min_size: float = 0.08,
    max_size: float = 0.45,
    difficult_size: int = 14,
    jpeg_quality: int = 95,
) -> dict:
    """Writes the synthetic shapes dataset in Pascal VOC layout.

    Args:
        out_dir: the dataset root (created; existing files of the same ids are overwritten).
        n_train: number of training images (ids ``train_00000``...).
        n_test: number of test images (ids ``test_00000``...).
        image_size: `(height, width)` of every image.
        seed: the seed; the same arguments give the same dataset.
        max_objects, min_size, max_size, difficult_size: see `draw_synthetic_image`.
        jpeg_quality: JPEG quality (0-100).

    Returns:
        A dict with ``root``, ``images_dir``, ``annotations_dir``, ``image_sets`` (split name ->
        set file), ``classes`` (list, background first) and ``n_objects`` (split -> count), ready
        for `DataGenerator.parse_xml`.
    """
    if n_train < 0 or n_test < 0:
        raise ValueError(f"n_train and n_test must be >= 0, got {n_train}, {n_test}")
    height, width = (int(v) for v in image_size)
    if height < 32 or width < 32:
        raise ValueError(f"image_size must be at least (32, 32), got {tuple(image_size)}")
    root = Path(out_dir)
    images_dir = root / "JPEGImages"
    annotations_dir = root / "Annotations"
    sets_dir = root / "ImageSets" / "Main"
    for directory in (images_dir, annotations_dir, sets_dir):
        directory.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(SHAPE_CLASSES) + "\n")

    children = np.random.SeedSequence(seed).spawn(2)
    n_objects = {}
    image_sets = {}
    for split, count, sequence in (("train", n_train, children[0]), ("test", n_test, children[1])):
        rng = np.random.default_rng(sequence)
        ids = []
        total = 0
        for k in range(count):
            image_id = f"{split}_{k:05d}"
            image, objects = draw_synthetic_image(
                rng,
                (height, width),
                max_objects=max_objects,
                min_size=min_size,
                max_size=max_size,
                difficult_size=difficult_size,
            )
            ok = cv2.imwrite(
                str(images_dir / f"{image_id}.jpg"),
                cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)],
            )
            if not ok:
                raise OSError(f"could not write {images_dir / f'{image_id}.jpg'}")
            xml = _annotation_xml(image_id, (height, width), objects)
            (annotations_dir / f"{image_id}.xml").write_bytes(xml)
            ids.append(image_id)
            total += len(objects)
        set_file = sets_dir / f"{split}.txt"
        set_file.write_text("".join(f"{i}\n" for i in ids))
        image_sets[split] = str(set_file)
        n_objects[split] = total
    trainval = sets_dir / "trainval.txt"
    trainval.write_text((sets_dir / "train.txt").read_text())
    image_sets["trainval"] = str(trainval)
    return {
        "root": str(root),
        "images_dir": str(images_dir),
        "annotations_dir": str(annotations_dir),
        "image_sets": image_sets,
        "classes": list(SHAPE_CLASSES),
        "n_objects": n_objects,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=50)
    parser.add_argument("--image-size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    info = make_synthetic_dataset(
        args.out_dir, args.n_train, args.n_test, tuple(args.image_size), args.seed
    )
    print(
        f"wrote {args.n_train} train / {args.n_test} test images "
        f"({info['n_objects']['train']} / {info['n_objects']['test']} objects) to {info['root']}"
    )


if __name__ == "__main__":
    main()
