"""DataGenerator construction and generate(): returns, dropping rules, degenerate boxes, order."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from data_generator.object_detection_2d_data_generator import (
    RETURNS_ORDER,
    DataGenerator,
    DatasetError,
    DegenerateBatchError,
)


class Shift:
    """A deterministic transform with an inverter: moves the boxes right by dx pixels."""

    def __init__(self, dx):
        self.dx = dx
        self.labels_format = None

    def __call__(self, image, labels=None, return_inverter=False):
        image = image + 1  # visible change to the image
        if labels is not None:
            labels = labels.copy()
            labels[:, [1, 3]] += self.dx
        dx = self.dx

        def inverter(predictions):
            predictions = np.array(predictions, copy=True)
            predictions[:, [2, 4]] -= dx
            return predictions

        outputs = (image,) if labels is None else (image, labels)
        return (
            (*outputs, inverter) if return_inverter else outputs[0] if labels is None else outputs
        )


class Encoder:
    """A label encoder with the SSDInputEncoder call convention: one row per box, padded."""

    def __call__(self, batch_labels, diagnostics=False):
        width = max(len(y) for y in batch_labels)
        encoded = np.full((len(batch_labels), width, 5), -1.0)
        for i, y in enumerate(batch_labels):
            encoded[i, : len(y)] = y
        return (encoded, encoded[..., :1]) if diagnostics else encoded


def _images(n, h=8, w=10):
    return [np.full((h, w, 3), 10 * i, dtype=np.uint8) for i in range(n)]


@pytest.fixture()
def dataset():
    labels = [
        [[1, 0, 0, 4, 4]],
        [],  # an image without boxes
        [[2, 1, 1, 5, 6], [1, 3, 3, 3, 7]],  # the second box has zero width
        [[1, 2, 2, 6, 6]],
        [[2, 5, 5, 5, 5]],  # only a degenerate box
    ]
    neutral = [[False], [], [True, False], [True], [False]]
    d = DataGenerator(
        filenames=[f"img{i}.jpg" for i in range(5)],
        labels=labels,
        image_ids=[f"id{i}" for i in range(5)],
        eval_neutral=neutral,
        verbose=False,
    )
    d.images = _images(5)  # in memory, no files needed
    return d


def test_all_returns_come_in_the_original_order(dataset):
    batch = next(
        dataset.generate(
            batch_size=5,
            shuffle=False,
            transformations=[Shift(2)],
            label_encoder=Encoder(),
            returns=set(RETURNS_ORDER),
        )
    )
    assert len(batch) == len(RETURNS_ORDER)
    out = dict(zip(RETURNS_ORDER, batch))
    # id1 (no boxes) and id4 (only a degenerate box, removed) are dropped
    assert out["image_ids"] == ["id0", "id2", "id3"]
    assert out["filenames"] == ["img0.jpg", "img2.jpg", "img3.jpg"]
    assert out["processed_images"].shape == (3, 8, 10, 3)
    assert out["processed_images"][1, 0, 0, 0] == 21  # image 2 (value 20) + 1 from Shift
    assert out["original_images"][1][0, 0, 0] == 20
    assert [y.tolist() for y in out["processed_labels"]] == [
        [[1, 2, 0, 6, 4]],
        [[2, 3, 1, 7, 6]],  # the zero-width box was removed after the transformation
        [[1, 4, 2, 8, 6]],
    ]
    assert [y.tolist() for y in out["original_labels"]] == [
        [[1, 0, 0, 4, 4]],
        [[2, 1, 1, 5, 6], [1, 3, 3, 3, 7]],
        [[1, 2, 2, 6, 6]],
    ]
    # the neutral flag of the removed box went with it
    assert [e.tolist() for e in out["evaluation-neutral"]] == [[False], [True], [True]]
    assert out["encoded_labels"].shape == (3, 1, 5)
    assert out["matched_anchors"].shape == (3, 1, 1)  # diagnostics=True was used
    # inverters undo the transformation on predictions [class, conf, xmin, ymin, xmax, ymax]
    prediction = np.array([[2, 0.9, 3, 1, 7, 6]])
    (inverter,) = out["inverse_transform"][1]
    assert inverter(prediction).tolist() == [[2, 0.9, 1, 1, 5, 6]]
    # the dataset itself is untouched
    assert dataset.labels[2].tolist() == [[2, 1, 1, 5, 6], [1, 3, 3, 3, 7]]
    assert dataset.images[2][0, 0, 0] == 20


def test_returns_subset_keeps_order_and_validates(dataset):
    batch = next(
        dataset.generate(batch_size=2, shuffle=False, returns={"image_ids", "processed_images"})
    )
    assert isinstance(batch[0], np.ndarray) and batch[1] == ["id0"]  # id1 has no boxes
    with pytest.raises(ValueError, match="unknown option"):
        dataset.generate(returns={"processed_image"})
    with pytest.raises(ValueError, match="degenerate_box_handling"):
        dataset.generate(degenerate_box_handling="delete")


def test_keep_images_without_gt_and_degenerate_handling(dataset):
    keep_all = next(
        dataset.generate(
            batch_size=5,
            shuffle=False,
            returns={"image_ids", "processed_labels"},
            keep_images_without_gt=True,
        )
    )
    labels, ids = keep_all  # processed_labels comes before image_ids
    assert ids == ["id0", "id1", "id2", "id3", "id4"]
    assert labels[1].shape == (0, 5) and labels[4].shape == (0, 5)

    with pytest.warns(UserWarning) as record:
        warned = next(
            dataset.generate(
                batch_size=5,
                shuffle=False,
                returns={"image_ids", "processed_labels"},
                degenerate_box_handling="warn",
            )
        )
    messages = [str(w.message) for w in record]
    assert [m.split(":")[0] for m in messages] == ["img2.jpg", "img4.jpg"]
    assert "1 degenerate box(es)" in messages[0] and "[[2, 5, 5, 5, 5]]" in messages[1]
    assert warned[1] == ["id0", "id2", "id3", "id4"]  # kept, with their degenerate boxes
    assert warned[0][1].shape == (2, 5)


def test_failed_transformation_drops_only_that_item(dataset):
    class FailOnId2:
        def __call__(self, image, labels):
            return (None, None) if image[0, 0, 0] == 20 else (image, labels)

    batch = next(
        dataset.generate(
            batch_size=5,
            shuffle=False,
            transformations=[FailOnId2(), Shift(1)],
            returns={"image_ids", "filenames", "inverse_transform", "processed_labels"},
        )
    )
    processed_labels, filenames, image_ids, inverters = batch
    assert image_ids == ["id0", "id3"]
    assert filenames == ["img0.jpg", "img3.jpg"]
    assert len(inverters) == 2 and all(len(i) == 1 for i in inverters)  # only Shift has one
    assert processed_labels[1].tolist() == [[1, 3, 2, 7, 6]]


def test_empty_batch_raises(dataset):
    with pytest.raises(DegenerateBatchError, match="img1.jpg"):
        dataset.process_batch([1, 4], returns={"processed_images"})


def test_shuffle_is_seeded_covers_every_item_and_leaves_dataset_order_alone(dataset):
    def epoch_ids(seed):
        gen = dataset.generate(
            batch_size=2,
            shuffle=True,
            returns={"image_ids"},
            keep_images_without_gt=True,
            degenerate_box_handling="keep",
            seed=seed,
        )
        return [i for _ in range(3) for i in next(gen)[0]]  # 3 batches = one pass of 5

    first = epoch_ids(0)
    assert sorted(first) == ["id0", "id1", "id2", "id3", "id4"]
    assert first == epoch_ids(0)
    assert any(epoch_ids(s) != first for s in (1, 2, 3))
    assert dataset.image_ids == ["id0", "id1", "id2", "id3", "id4"]  # not permuted in place

    gen = dataset.generate(
        batch_size=2,
        shuffle=False,
        returns={"image_ids"},
        keep_images_without_gt=True,
        degenerate_box_handling="keep",
    )
    # smaller last batch, then a new pass
    assert [next(gen)[0] for _ in range(4)] == [
        ["id0", "id1"],
        ["id2", "id3"],
        ["id4"],
        ["id0", "id1"],
    ]


def test_labels_format_is_given_to_transformations(dataset):
    shift = Shift(0)
    next(
        dataset.generate(
            batch_size=1, shuffle=False, transformations=[shift], returns={"processed_images"}
        )
    )
    assert shift.labels_format == {"class_id": 0, "xmin": 1, "ymin": 2, "xmax": 3, "ymax": 4}


def test_dataset_without_labels_transforms_images_only():
    d = DataGenerator(filenames=["a.jpg", "b.jpg"], verbose=False)
    d.images = _images(2)
    with pytest.warns(UserWarning, match="no labels"):
        gen = d.generate(
            batch_size=2,
            shuffle=False,
            transformations=[Shift(3)],
            returns={"processed_images", "processed_labels", "inverse_transform"},
        )
    images, labels, inverters = next(gen)
    assert images[1, 0, 0, 0] == 11 and labels is None and len(inverters[0]) == 1


def test_variable_size_images_come_as_an_object_array():
    d = DataGenerator(filenames=["a", "b"], labels=[[[1, 0, 0, 2, 2]]] * 2, verbose=False)
    d.images = [np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)]
    (images,) = next(d.generate(batch_size=2, shuffle=False, returns={"processed_images"}))
    assert images.dtype == object and images[1].shape == (5, 4, 3)


def test_constructor_reads_text_and_pickle_inputs(tmp_path):
    (tmp_path / "names.txt").write_text("a.jpg\nb.jpg\n")
    with open(tmp_path / "labels.pkl", "wb") as f:
        pickle.dump([[[1, 0, 0, 2, 2]], []], f)
    d = DataGenerator(
        filenames=str(tmp_path / "names.txt"),
        images_dir="imgs",
        labels=str(tmp_path / "labels.pkl"),
        verbose=False,
    )
    assert d.filenames == ["imgs/a.jpg", "imgs/b.jpg"] and d.get_dataset_size() == 2
    assert d.labels[0].tolist() == [[1, 0, 0, 2, 2]] and d.labels[1].shape == (0, 5)
    with pytest.raises(ValueError, match="labels has 1 entries but filenames has 2"):
        DataGenerator(filenames=["a", "b"], labels=[[]])
    with pytest.raises(DatasetError, match="did not load a dataset"):
        DataGenerator().generate()


def test_bccd_generate_removes_the_zero_size_boxes_like_the_original(
    golden, golden_dir, shared_data_dir
):
    meta = golden("parse_xml_bccd").meta
    root = shared_data_dir / "bccd/BCCD"
    d = DataGenerator()
    with pytest.warns(UserWarning):
        d.parse_xml(
            [str(root / "JPEGImages")],
            [str(golden_dir / "bccd_degenerate_ids.txt")],
            [str(root / "Annotations")],
            meta["classes"],
            verbose=False,
        )
    images, labels, ids = next(
        d.generate(
            batch_size=2,
            shuffle=False,
            returns={"processed_images", "processed_labels", "image_ids"},
        )
    )
    expected = meta["oddities"]["generate_processed_labels"]
    assert ids == expected["image_ids"]
    for got, want in zip(labels, expected["labels"]):
        np.testing.assert_array_equal(got, np.asarray(want))
    assert images.shape == (2, 480, 640, 3) and images.dtype == np.uint8


def test_importing_the_generator_does_not_import_keras(imports_leave_out):
    imports_leave_out(
        [
            "data_generator.object_detection_2d_data_generator",
            "data_generator.synthetic_shapes",
            "data_generator.image_io",
        ]
    )


def test_constructor_loads_images_into_memory_as_rgb_or_names_the_bad_file(tmp_path):
    from PIL import Image

    from data_generator.data_report import DataValidationError

    gray = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    d = DataGenerator(
        load_images_into_memory=True, filenames=[str(tmp_path / "gray.png")], verbose=False
    )
    assert d.images[0].shape == (20, 30, 3)
    np.testing.assert_array_equal(d.images[0][:, :, 2], gray)
    with pytest.raises(DataValidationError, match="bad.jpg: unreadable image"):
        DataGenerator(
            load_images_into_memory=True,
            filenames=[str(tmp_path / "gray.png"), str(tmp_path / "bad.jpg")],
            verbose=False,
        )
