"""Datasets and augmentation: DataGenerator, parsers, HDF5 datasets and the image/box transforms."""
