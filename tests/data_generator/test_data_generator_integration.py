"""DataGenerator with the package's real transformations, augmentation chain and SSD encoder."""

from __future__ import annotations

import numpy as np
import pytest

from data_generator.synthetic_shapes import make_synthetic_dataset

geometric = pytest.importorskip("data_generator.object_detection_2d_geometric_ops")
misc = pytest.importorskip("data_generator.object_detection_2d_misc_utils")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory, parse_voc):
    info = make_synthetic_dataset(
        tmp_path_factory.mktemp("shapes"), n_train=12, n_test=0, image_size=(120, 160), seed=2
    )
    return parse_voc(info)


def test_resize_inverters_map_processed_labels_back(shapes):
    """Resize 160x120 -> 300x300 and back: each coordinate is rounded twice, so the round trip
    is within 1 pixel of the original label."""
    resize = geometric.Resize(height=300, width=300)
    flip = geometric.Flip(dim="horizontal")
    returns = {"processed_images", "processed_labels", "inverse_transform", "original_labels"}
    images, processed, inverters, originals = next(
        shapes.generate(
            batch_size=6, shuffle=False, transformations=[flip, resize], returns=returns
        )
    )
    assert images.shape == (len(processed), 300, 300, 3)
    for labels, item_inverters, original in zip(processed, inverters, originals):
        predictions = np.insert(labels.astype(np.float64), 1, 1.0, axis=1)  # conf column
        back = misc.apply_inverse_transforms(predictions, item_inverters)
        if len(item_inverters) == 2:  # Flip has an inverter here: exact flip back
            np.testing.assert_allclose(back[:, 2:], original[:, 1:], atol=1)
        else:  # the original Flip had none (bug 23): only Resize is undone
            flipped = original.astype(np.float64)
            flipped[:, [1, 3]] = 160 - flipped[:, [3, 1]]
            np.testing.assert_allclose(back[:, 2:], flipped[:, 1:], atol=1)
        assert back[:, 0].tolist() == original[:, 0].tolist()


def test_ssd_augmentation_and_encoder_batches_are_reproducible(shapes):
    chains = pytest.importorskip("data_generator.data_augmentation_chain_original_ssd")
    encoders = pytest.importorskip("ssd_encoder_decoder.ssd_input_encoder")
    pytest.importorskip("keras")
    encoder = encoders.SSDInputEncoder(
        img_height=96,
        img_width=96,
        n_classes=5,
        predictor_sizes=[[12, 12], [6, 6], [3, 3]],
        min_scale=0.1,
        max_scale=0.9,
        aspect_ratios_global=[0.5, 1.0, 2.0],
        variances=[1.0, 1.0, 1.0, 1.0],
    )
    n_anchors = 4 * (144 + 36 + 9)

    def batch(chain_seed, index):
        ds = shapes.to_py_dataset(
            batch_size=4,
            transformations=[chains.SSDDataAugmentation(96, 96, rng=chain_seed)],
            label_encoder=encoder,
            returns={"processed_images", "encoded_labels", "processed_labels"},
            seed=11,
        )
        return ds[index]

    images, encoded, labels = batch(0, 1)
    assert images.shape == (len(labels), 96, 96, 3) and images.dtype == np.uint8
    assert encoded.shape == (len(labels), n_anchors, 5 + 1 + 12)
    again = batch(12345, 1)  # another starting state of the chain's generator: same batch
    np.testing.assert_array_equal(again[0], images)
    np.testing.assert_array_equal(again[1], encoded)
    other = batch(0, 2)
    assert other[0].shape[1:] == (96, 96, 3) and not np.array_equal(other[0][:1], images[:1])
