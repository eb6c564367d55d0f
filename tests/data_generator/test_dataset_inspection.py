"""Dataset box statistics: boxes scaled to the input size as Resize does, counts, buckets."""

from __future__ import annotations

import cv2
import numpy as np

from data_generator import DataGenerator
from data_generator.dataset_inspection import box_statistics, collect_boxes, size_buckets


def _dataset(tmp_path):
    """Two images: 200x100 (h x w) with two boxes, 50x50 without any."""
    files = []
    for name, (h, w) in (("a", (200, 100)), ("b", (50, 50))):
        path = tmp_path / f"{name}.png"
        cv2.imwrite(str(path), np.zeros((h, w, 3), np.uint8))
        files.append(str(path))
    labels = [
        np.array([[1, 10, 20, 50, 100], [2, 0, 0, 100, 200]], dtype=np.float64),
        np.zeros((0, 5)),
    ]
    return DataGenerator(filenames=files, labels=labels, image_ids=["a", "b"], verbose=False)


def test_boxes_are_scaled_per_axis_to_the_input(tmp_path):
    """Input 100x200 (h x w): image a's x scales by 200/100 = 2, y by 100/200 = 0.5."""
    boxes = collect_boxes(_dataset(tmp_path), input_size=(100, 200))
    np.testing.assert_array_equal(boxes.image_sizes, [[200, 100], [50, 50]])
    np.testing.assert_allclose(boxes.boxes, [[20, 10, 100, 50], [0, 0, 200, 100]])
    np.testing.assert_allclose(boxes.widths, [80, 200])
    np.testing.assert_allclose(boxes.aspect_ratios, [2.0, 2.0])
    assert boxes.box_image.tolist() == [0, 0] and boxes.class_ids.tolist() == [1, 2]
    per_image = boxes.labels_per_image()
    assert [len(p) for p in per_image] == [2, 0]


def test_statistics_count_classes_buckets_and_empty_images(tmp_path):
    boxes = collect_boxes(_dataset(tmp_path), input_size=(100, 200))
    stats = box_statistics(boxes, ["background", "cell", "big"])
    assert stats["n_images"] == 2 and stats["n_boxes"] == 2
    assert stats["images_without_boxes"] == ["b"]
    assert stats["per_class"]["cell"]["boxes"] == 1 and stats["per_class"]["big"]["images"] == 1
    # areas 80 * 40 = 3200 (medium: >= 32**2, < 96**2) and 200 * 100 = 20000 (large)
    assert stats["size_buckets"] == {"small": 0, "medium": 1, "large": 1}
    assert stats["width"]["p50"] == 140.0 and stats["area"]["p0"] == 3200.0
    assert size_buckets([1023, 1024, 9215, 9216]).tolist() == ["small", "medium", "medium", "large"]
