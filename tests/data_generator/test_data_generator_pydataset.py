"""DataGenerator.to_py_dataset: a keras.utils.PyDataset with a seeded, reproducible order."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from data_generator.keras_dataset import (  # noqa: E402
    DataGeneratorPyDataset,
    reseed_transformations,
)
from data_generator.object_detection_2d_data_generator import DataGenerator  # noqa: E402

N_ITEMS = 11


def _dataset() -> DataGenerator:
    d = DataGenerator(
        filenames=[f"img{i}.jpg" for i in range(N_ITEMS)],
        labels=[[[1 + i % 3, i, i, i + 4, i + 5]] for i in range(N_ITEMS)],
        image_ids=[f"id{i}" for i in range(N_ITEMS)],
        verbose=False,
    )
    # in memory: image i is filled with the value i, so a batch shows which items it holds
    d.images = [np.full((6, 8, 3), i, dtype=np.uint8) for i in range(N_ITEMS)]
    return d


class AddNoise:
    """A random transformation with its own generator, like the package's Random* ops."""

    def __init__(self, rng=None):
        self.rng = np.random.default_rng(rng)

    def __call__(self, image, labels):
        noise = self.rng.integers(0, 100, size=image.shape, dtype=np.uint8)
        return image + noise, labels


class Chain:
    """Two ops sharing one generator, as the augmentation chains do."""

    def __init__(self, rng=None):
        self.rng = np.random.default_rng(rng)
        self.ops = [AddNoise(self.rng), AddNoise(self.rng)]

    def __call__(self, image, labels):
        for op in self.ops:
            image, labels = op(image, labels)
        return image, labels


def _ids_of_epoch(ds: DataGeneratorPyDataset) -> list[str]:
    return [i for b in range(len(ds)) for i in ds[b][0]]


def test_len_order_and_epochs_are_seeded():
    ds = _dataset().to_py_dataset(batch_size=4, returns={"image_ids"}, seed=7)
    assert isinstance(ds, keras.utils.PyDataset) and len(ds) == 3  # ceil(11 / 4)
    epoch0 = _ids_of_epoch(ds)
    assert sorted(epoch0) == sorted(f"id{i}" for i in range(N_ITEMS))
    ds.on_epoch_end()
    epoch1 = _ids_of_epoch(ds)
    assert sorted(epoch1) == sorted(epoch0) and epoch1 != epoch0

    again = _dataset().to_py_dataset(batch_size=4, returns={"image_ids"}, seed=7)
    assert _ids_of_epoch(again) == epoch0
    again.set_epoch(1)
    assert _ids_of_epoch(again) == epoch1
    other = _dataset().to_py_dataset(batch_size=4, returns={"image_ids"}, seed=8)
    assert _ids_of_epoch(other) != epoch0

    unshuffled = _dataset().to_py_dataset(batch_size=4, shuffle=False, returns={"image_ids"})
    assert _ids_of_epoch(unshuffled) == [f"id{i}" for i in range(N_ITEMS)]
    with pytest.raises(IndexError):
        ds[3]


def test_random_transformations_are_reseeded_per_batch():
    """The same (seed, epoch, batch) gives the same augmented batch, whatever state the
    transformations' generators were in and in whatever order batches are requested."""
    a = _dataset().to_py_dataset(
        batch_size=4, transformations=[Chain(1)], returns={"processed_images"}, seed=3
    )
    b = _dataset().to_py_dataset(
        batch_size=4, transformations=[Chain(999)], returns={"processed_images"}, seed=3
    )
    first = [a[i][0] for i in range(3)]
    for i in (2, 0, 1):  # another order, another starting state
        np.testing.assert_array_equal(b[i][0], first[i])
    np.testing.assert_array_equal(a[0][0], first[0])  # asking again gives the same batch
    a.on_epoch_end()
    assert not np.array_equal(np.sort(a[0][0].ravel()), np.sort(first[0].ravel()))


def test_reseed_keeps_a_shared_generator_shared():
    chain = Chain(0)
    assert reseed_transformations([chain], [1, 2, 3]) == 1
    assert chain.ops[0].rng is chain.rng and chain.ops[1].rng is chain.rng
    state = chain.rng.bit_generator.state
    reseed_transformations([Chain(5)], [1, 2, 3])
    other = Chain(5)
    reseed_transformations([other], [1, 2, 3])
    assert other.rng.bit_generator.state == state


def _model():
    inputs = keras.Input(shape=(6, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1.0)(inputs))
    return keras.Model(inputs, keras.layers.Dense(2)(x))


class TwoNumbers:
    """A label encoder giving a fixed-size target, enough for model.fit."""

    def __call__(self, batch_labels, diagnostics=False):
        return np.array([[y[0, 1], y[0, 2]] for y in batch_labels], dtype=np.float32)


@pytest.mark.parametrize("use_multiprocessing", [False, True])
def test_model_fit_with_workers_sees_the_same_batches_as_without(use_multiprocessing):
    """Training with 2 workers (threads or processes) gives the weights that training without
    workers gives: the same batches, in the same order, with the same random augmentation."""
    kwargs = {"batch_size": 4, "label_encoder": TwoNumbers(), "seed": 0}
    plain = _dataset().to_py_dataset(transformations=[AddNoise(0)], **kwargs)
    parallel = _dataset().to_py_dataset(
        transformations=[AddNoise(123)],
        workers=2,
        use_multiprocessing=use_multiprocessing,
        **kwargs,
    )
    models = []
    for dataset in (plain, parallel):
        keras.utils.set_random_seed(0)
        model = _model()
        model.compile(optimizer=keras.optimizers.SGD(0.001), loss="mse")
        history = model.fit(dataset, epochs=2, verbose=0)
        assert len(history.history["loss"]) == 2
        assert np.all(np.isfinite(history.history["loss"]))
        models.append(model)
    assert parallel.epoch == plain.epoch >= 2  # on_epoch_end moved both to new orders alike
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        models[0].predict(parallel, verbose=0), models[0].predict(plain, verbose=0), rtol=1e-6
    )
