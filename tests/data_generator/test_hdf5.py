"""DataGenerator.create_hdf5_dataset and loading from HDF5: a lossless round trip."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from data_generator.data_report import DataValidationError, DataWarning
from data_generator.object_detection_2d_data_generator import DataGenerator
from data_generator.synthetic_shapes import SHAPE_CLASSES, make_synthetic_dataset


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return make_synthetic_dataset(root, n_train=10, n_test=0, image_size=(48, 64), seed=1)


def _parsed(shapes, **kwargs) -> DataGenerator:
    dataset = DataGenerator(**kwargs)
    dataset.parse_xml(
        [shapes["images_dir"]],
        [shapes["image_sets"]["train"]],
        [shapes["annotations_dir"]],
        SHAPE_CLASSES,
        verbose=False,
    )
    return dataset


def test_round_trip_keeps_images_labels_ids_flags_and_filenames(shapes, tmp_path):
    source = _parsed(shapes)
    # a fractional coordinate must survive (the original stored labels as int32)
    source.labels[0] = source.labels[0].astype(np.float64)
    if source.labels[0].size:
        source.labels[0][0, 1] += 0.25
    source.eval_neutral[1] = [True] * len(source.labels[1])
    path = tmp_path / "d.h5"
    written = _parsed(shapes)
    written.labels, written.eval_neutral = source.labels, source.eval_neutral
    written.create_hdf5_dataset(str(path), verbose=False)

    for loaded in (written, DataGenerator(hdf5_dataset_path=str(path), verbose=False)):
        assert loaded.dataset_size == source.dataset_size
        assert loaded.image_ids == source.image_ids
        assert all(isinstance(i, str) for i in loaded.image_ids)  # not bytes
        assert loaded.filenames == source.filenames
        assert [list(e) for e in loaded.eval_neutral] == [list(e) for e in source.eval_neutral]
        for got, want in zip(loaded.labels, source.labels):
            np.testing.assert_array_equal(got, want)
            assert got.shape == np.asarray(want).reshape(-1, 5).shape  # (0, 5) for no boxes
        for i in range(source.dataset_size):
            np.testing.assert_array_equal(loaded._load_image(i), source._load_image(i))

    with h5py.File(path, "r") as f:
        assert f["labels"].dtype.metadata["vlen"] == np.float64
        assert f.attrs["has_labels"] and f.attrs["variable_image_size"]
        assert f["image_shapes"][0].tolist() == [48, 64, 3]


def test_generate_from_hdf5_equals_generate_from_files(shapes, tmp_path):
    files = _parsed(shapes)
    hdf5 = _parsed(shapes, load_images_into_memory=False)
    hdf5.create_hdf5_dataset(str(tmp_path / "d.h5"), verbose=False)
    memory = DataGenerator(
        hdf5_dataset_path=str(tmp_path / "d.h5"), load_images_into_memory=True, verbose=False
    )
    returns = {"processed_images", "processed_labels", "image_ids"}
    expected = next(files.generate(batch_size=4, shuffle=True, returns=returns, seed=5))
    for dataset in (hdf5, memory):
        got = next(dataset.generate(batch_size=4, shuffle=True, returns=returns, seed=5))
        np.testing.assert_array_equal(got[0], expected[0])
        assert got[2] == expected[2]
        for a, b in zip(got[1], expected[1]):
            np.testing.assert_array_equal(a, b)


def test_resize_scales_the_labels_too(shapes, tmp_path):
    dataset = _parsed(shapes)
    original = [y.copy() for y in dataset.labels]
    dataset.create_hdf5_dataset(str(tmp_path / "r.h5"), resize=(96, 32), verbose=False)
    assert dataset._load_image(0).shape == (96, 32, 3)
    for got, want in zip(dataset.labels, original):
        # height 48 -> 96 (x2), width 64 -> 32 (x0.5)
        expected = want.astype(np.float64) * np.array([1, 0.5, 2, 0.5, 2])
        np.testing.assert_allclose(got.reshape(-1, 5), expected.reshape(-1, 5))
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert not f.attrs["variable_image_size"]


def test_unreadable_image_is_dropped_and_reported_or_raises(shapes, tmp_path):
    dataset = _parsed(shapes)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\x89PNG but not really")
    dataset.filenames[2] = str(broken)
    kept_ids = dataset.image_ids[:2] + dataset.image_ids[3:]
    kept_labels = dataset.labels[:2] + dataset.labels[3:]
    with pytest.warns(DataWarning, match="broken.jpg: unreadable image"):
        dataset.create_hdf5_dataset(str(tmp_path / "d.h5"), verbose=False)
    assert dataset.image_ids == kept_ids and dataset.dataset_size == len(kept_ids)
    for got, want in zip(dataset.labels, kept_labels):
        np.testing.assert_array_equal(got, want)

    again = _parsed(shapes)
    again.filenames[2] = str(broken)
    with pytest.raises(DataValidationError, match="broken.jpg"):
        again.create_hdf5_dataset(str(tmp_path / "e.h5"), verbose=False, bad_items="raise")
    assert not (tmp_path / "e.h5").exists()


def test_generator_with_hdf5_pickles_without_the_file_handle(shapes, tmp_path):
    import pickle

    dataset = _parsed(shapes)
    dataset.create_hdf5_dataset(str(tmp_path / "d.h5"), verbose=False)
    clone = pickle.loads(pickle.dumps(dataset))
    np.testing.assert_array_equal(clone._load_image(3), dataset._load_image(3))


def test_loads_a_file_in_the_original_layout(tmp_path):
    """The original wrote int32 labels, vlen-str ids and no filenames; such files still load."""
    path = tmp_path / "original.h5"
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    with h5py.File(path, "w") as f:
        for key, value in (
            ("has_labels", True),
            ("has_image_ids", True),
            ("has_eval_neutral", True),
            ("variable_image_size", True),
        ):
            f.attrs.create(key, data=value, dtype=np.bool_)
        f.create_dataset("images", shape=(1,), dtype=h5py.vlen_dtype(np.uint8))[0] = image.ravel()
        f.create_dataset("image_shapes", data=np.array([[2, 3, 3]], dtype=np.int32))
        labels = np.array([[1, 0, 0, 2, 1], [2, 1, 0, 3, 2]], dtype=np.int32)
        f.create_dataset("labels", shape=(1,), dtype=h5py.vlen_dtype(np.int32))[0] = labels.ravel()
        f.create_dataset("label_shapes", data=np.array([[2, 5]], dtype=np.int32))
        f.create_dataset("image_ids", shape=(1,), dtype=h5py.string_dtype())[0] = "img_7"
        neutral = f.create_dataset("eval_neutral", shape=(1,), dtype=h5py.vlen_dtype(np.bool_))
        neutral[0] = np.array([False, True])
    dataset = DataGenerator(hdf5_dataset_path=str(path), verbose=False)
    assert dataset.get_dataset_size() == 1 and dataset.filenames is None
    assert dataset.image_ids == ["img_7"] and dataset.eval_neutral == [[False, True]]
    np.testing.assert_array_equal(dataset.labels[0], labels)
    images, ids = next(dataset.generate(batch_size=1, returns={"processed_images", "image_ids"}))
    np.testing.assert_array_equal(images[0], image)
    assert ids == ["img_7"]
