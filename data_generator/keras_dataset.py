"""`DataGeneratorPyDataset`: a `DataGenerator`'s batches as a ``keras.utils.PyDataset``.

The only module of ``data_generator`` that imports Keras; `DataGenerator.to_py_dataset` imports it
when called, so the rest of the package stays numpy + OpenCV.

Reproducibility: the order of epoch ``e`` is ``default_rng([seed, e]).permutation(n)`` and batch
``i`` of that epoch is a pure function of ``(seed, e, i)``: before building it, every
transformation (and, recursively, the transformations it holds, as chains do) that has a
``reseed(seed)`` method is called with a seed derived from ``(seed, e, i)``, and every
``numpy.random.Generator`` held in an ``rng`` attribute is re-seeded in place from it (the ops of
this package take ``rng``). So with workers (threads or processes) the batches are the same as
with none. Thread workers each use their own copy of the transformations.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Iterable, Sequence

import keras
import numpy as np

from data_generator.object_detection_2d_data_generator import DataGenerator

_MAX_DEPTH = 4


def reseed_transformations(transformations: Sequence[Callable], seed: Sequence[int]) -> int:
    """Re-seeds, in place, the random generators of ``transformations`` and of those they hold.

    Every distinct ``numpy.random.Generator`` found in an ``rng`` attribute (of a transformation,
    or of an object it holds directly or in a list/tuple, a few levels deep) gets the state of a
    fresh generator seeded from ``seed``; a generator shared by several ops (as the chains share
    theirs) stays shared. An object with a ``reseed(int)`` method is called instead.

    Args:
        transformations: the transformation objects.
        seed: entropy for ``numpy.random.SeedSequence`` (e.g. ``[seed, epoch, batch]``).

    Returns:
        How many generators (or ``reseed`` methods) were re-seeded.
    """
    sequence = np.random.SeedSequence(list(seed))
    visited: set[int] = set()
    count = 0

    def visit(obj, depth):
        nonlocal count
        if id(obj) in visited or depth > _MAX_DEPTH:
            return
        visited.add(id(obj))
        reseed = getattr(obj, "reseed", None)
        rng = getattr(obj, "rng", None)
        if callable(reseed) and not isinstance(obj, type):
            reseed(int(sequence.spawn(1)[0].generate_state(1)[0]))
            count += 1
        elif isinstance(rng, np.random.Generator) and id(rng) not in visited:
            visited.add(id(rng))
            bit_generator = rng.bit_generator
            bit_generator.state = type(bit_generator)(sequence.spawn(1)[0]).state
            count += 1
        attributes = getattr(obj, "__dict__", None)
        if not attributes:
            return
        for value in list(attributes.values()):
            items = value if isinstance(value, (list, tuple)) else (value,)
            for item in items:
                if callable(item) and hasattr(item, "__dict__") and not isinstance(item, type):
                    visit(item, depth + 1)

    for transform in transformations:
        visit(transform, 0)
    return count


class DataGeneratorPyDataset(keras.utils.PyDataset):
    """Batches of a `DataGenerator` for ``model.fit(dataset)`` with workers.

    Args:
        data_generator: the dataset.
        batch_size, shuffle, transformations, label_encoder, returns, keep_images_without_gt,
            degenerate_box_handling: as in `DataGenerator.generate`.
        seed: seed of the order and of the augmentations; None draws one at construction (so
            every worker still agrees on the order).
        workers, use_multiprocessing, max_queue_size: see ``keras.utils.PyDataset``.

    ``len(dataset)`` is ``ceil(dataset_size / batch_size)``; ``dataset[i]`` is the tuple of the
    ``returns`` for batch ``i`` of the current epoch; `on_epoch_end` moves to the next epoch's
    order (``set_epoch`` jumps to any epoch).
    """

    def __init__(
        self,
        data_generator: DataGenerator,
        batch_size: int = 32,
        shuffle: bool = True,
        transformations: Sequence[Callable] = (),
        label_encoder: Callable | None = None,
        returns: Iterable[str] = ("processed_images", "encoded_labels"),
        keep_images_without_gt: bool = False,
        degenerate_box_handling: str | None = "remove",
        seed: int | None = None,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ):
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        self.returns = set(returns)
        data_generator._check_generate_args(batch_size, self.returns, degenerate_box_handling)
        self.data_generator = data_generator
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.transformations = data_generator._prepare_transformations(transformations)
        self.label_encoder = label_encoder
        self.keep_images_without_gt = keep_images_without_gt
        self.degenerate_box_handling = degenerate_box_handling
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self.seed = int(seed)
        self.epoch = 0
        self._order_cache: tuple[int, np.ndarray] | None = None
        self._local = threading.local()

    def __len__(self) -> int:
        return math.ceil(self.data_generator.get_dataset_size() / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Makes the batches those of epoch ``epoch`` (0-based)."""
        self.epoch = int(epoch)

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def epoch_order(self, epoch: int | None = None) -> np.ndarray:
        """The item order of an epoch (the current one by default)."""
        epoch = self.epoch if epoch is None else int(epoch)
        size = self.data_generator.get_dataset_size()
        if not self.shuffle:
            return np.arange(size)
        cache = self._order_cache
        if cache is None or cache[0] != epoch:
            cache = (epoch, np.random.default_rng([self.seed, epoch]).permutation(size))
            self._order_cache = cache
        return cache[1]

    def _thread_transformations(self) -> list:
        # Each worker thread gets its own copy, so re-seeding in one thread cannot change the
        # random draws of a batch another thread is building.
        if threading.current_thread() is threading.main_thread():
            return self.transformations
        local = getattr(self._local, "transformations", None)
        if local is None:
            local = copy.deepcopy(self.transformations)
            self._local.transformations = local
        return local

    def __getitem__(self, index: int) -> tuple:
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range for {len(self)} batches")
        epoch = self.epoch
        order = self.epoch_order(epoch)
        batch_indices = order[index * self.batch_size : (index + 1) * self.batch_size]
        transformations = self._thread_transformations()
        reseed_transformations(transformations, [self.seed, epoch, index])
        return self.data_generator.process_batch(
            batch_indices,
            transformations=transformations,
            label_encoder=self.label_encoder,
            returns=self.returns,
            keep_images_without_gt=self.keep_images_without_gt,
            degenerate_box_handling=self.degenerate_box_handling,
        )

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_local"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()
