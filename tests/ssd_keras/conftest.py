"""Fixtures of the app tests: a tiny synthetic shapes dataset, written once per session."""

from __future__ import annotations

import pytest

from data_generator.synthetic_shapes import make_synthetic_dataset

# Small enough that SSD7 steps take a fraction of a second on one core.
TINY_IMAGE_SIZE = (64, 96)


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory):
    """A 16 train / 6 test image synthetic dataset (VOC layout) of 64x96 images."""
    root = tmp_path_factory.mktemp("shapes")
    return make_synthetic_dataset(
        root, n_train=16, n_test=6, image_size=TINY_IMAGE_SIZE, seed=3, min_size=0.2
    )
