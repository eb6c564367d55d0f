"""Tests of the augmentation chains on real images (../shared/data) and on synthetic ones."""

import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from data_generator.data_augmentation_chain_constant_input_size import (
    DataAugmentationConstantInputSize,
)
from data_generator.data_augmentation_chain_original_ssd import (
    SSDDataAugmentation,
    SSDPhotometricDistortions,
)
from data_generator.data_augmentation_chain_satellite import DataAugmentationSatellite
from data_generator.data_augmentation_chain_variable_input_size import (
    DataAugmentationVariableInputSize,
)
from data_generator.object_detection_2d_misc_utils import apply_inverse_transforms

DATASETS = {  # name -> folder holding Annotations/ and JPEGImages/
    "bccd": "bccd/BCCD",
    "raccoon": "raccoon",
    "voc2012_sample": "voc2012_sample",
}
# The fast subset: the first images of each dataset plus BCCD's two files with zero-size boxes.
FAST_IDS = {
    "bccd": ["BloodImage_00000", "BloodImage_00338", "BloodImage_00343"],
    "raccoon": ["raccoon-1", "raccoon-10"],
    "voc2012_sample": ["2007_000027", "2007_000032"],
}


def make_chains(seed):
    return {
        "ssd": SSDDataAugmentation(300, 300, rng=seed),
        "constant": DataAugmentationConstantInputSize(rng=seed),
        "variable": DataAugmentationVariableInputSize(300, 300, rng=seed),
        "satellite": DataAugmentationSatellite(300, 300, rng=seed),
    }


def read_voc_item(folder, image_id):
    """RGB uint8 image and ``(k, 5)`` int labels (class ids by name order of appearance)."""
    image = cv2.imread(str(folder / "JPEGImages" / f"{image_id}.jpg"), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read image {image_id}"
    root = ET.parse(folder / "Annotations" / f"{image_id}.xml").getroot()
    names, rows = [], []
    for obj in root.iter("object"):
        name = obj.findtext("name")
        if name not in names:
            names.append(name)
        box = obj.find("bndbox")
        corners = [round(float(box.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax")]
        rows.append([names.index(name) + 1, *corners])
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), np.array(rows, dtype=np.int64).reshape(-1, 5)


def check_output(name, image, labels, out_image, out_labels):
    if name == "constant":
        assert out_image.shape == image.shape
    else:
        assert out_image.shape == (300, 300, 3)
    assert out_image.dtype == np.uint8
    assert out_labels.ndim == 2 and out_labels.shape[1] == labels.shape[1]
    height, width = out_image.shape[:2]
    assert (out_labels[:, [1, 3]] >= 0).all() and (out_labels[:, [1, 3]] <= width).all()
    assert (out_labels[:, [2, 4]] >= 0).all() and (out_labels[:, [2, 4]] <= height).all()
    if name != "constant":  # those end with a box filter that drops degenerate boxes
        assert (out_labels[:, 3] > out_labels[:, 1]).all()
        assert (out_labels[:, 4] > out_labels[:, 2]).all()


def run_chains_on(folder, image_ids, seed):
    chains = make_chains(seed)
    n_boxes_out = 0
    for image_id in image_ids:
        image, labels = read_voc_item(folder, image_id)
        for name, chain in chains.items():
            out_image, out_labels = chain(image, labels)
            check_output(name, image, labels, out_image, out_labels)
            n_boxes_out += len(out_labels)
            # Inference form: the image alone.
            assert chain(image).dtype == np.uint8
    return n_boxes_out


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_chains_on_a_subset_of_real_images(shared_data_dir, dataset):
    folder = shared_data_dir / DATASETS[dataset]
    assert run_chains_on(folder, FAST_IDS[dataset], seed=0) > 0


@pytest.mark.slow
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_chains_on_every_real_image(shared_data_dir, dataset):
    # 664 images x 4 chains, with and without labels: about 50 s of CPU (2.5 min wall, shared).
    folder = shared_data_dir / DATASETS[dataset]
    image_ids = sorted(path.stem for path in (folder / "Annotations").glob("*.xml"))
    assert len(image_ids) >= 100
    assert run_chains_on(folder, image_ids, seed=1) > 0


def test_ssd_chain_inverters_map_boxes_back(shared_data_dir):
    folder = shared_data_dir / DATASETS["voc2012_sample"]
    chain = SSDDataAugmentation(300, 300, rng=3)
    for image_id in FAST_IDS["voc2012_sample"]:
        image, labels = read_voc_item(folder, image_id)
        # A sixth column tags each box so the survivors can be matched to their originals.
        tagged = np.concatenate([labels, np.arange(len(labels))[:, None]], axis=1)
        tolerance = 0.5 * 4 * max(image.shape[:2]) / 300 + 0.5 + 1e-6
        for _ in range(10):
            out, out_labels, inverters = chain(image, tagged, return_inverter=True)
            predictions = np.insert(out_labels.astype(np.float64), 1, 0.9, axis=1)
            back = apply_inverse_transforms(predictions, inverters)
            original = tagged[out_labels[:, 5]]
            # Crops only shrink boxes; the resize rounds by <= tolerance (up to a 4x expansion
            # shrunk to 300 px, then the inverter's own rounding).
            assert (back[:, [2, 3]] >= original[:, [1, 2]] - tolerance).all()
            assert (back[:, [4, 5]] <= original[:, [3, 4]] + tolerance).all()
            np.testing.assert_array_equal(back[:, 0], original[:, 0])


def synthetic_item(seed=0, shape=(240, 320, 3)):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    labels = np.array([[1, 30, 40, 150, 200], [2, 160, 20, 300, 120], [3, 10, 10, 40, 30]])
    return image, labels


@pytest.mark.parametrize("name", list(make_chains(0)))
def test_chains_are_reproducible_with_a_seed(name):
    image, labels = synthetic_item()
    first = make_chains(7)[name]
    second = make_chains(7)[name]
    other = make_chains(8)[name]
    outputs = [
        (first(image, labels), second(image, labels), other(image, labels)) for _ in range(5)
    ]
    differs = False
    for (im1, lb1), (im2, lb2), (im3, _) in outputs:
        np.testing.assert_array_equal(im1, im2)
        np.testing.assert_array_equal(lb1, lb2)
        differs |= im1.shape != im3.shape or not np.array_equal(im1, im3)
    assert differs


@pytest.mark.parametrize("name", list(make_chains(0)))
def test_chains_take_gray_and_rgba_images_and_empty_labels(name):
    image, labels = synthetic_item()
    chain = make_chains(2)[name]
    expected = image.shape if name == "constant" else (300, 300, 3)
    for variant in (image[:, :, 0], image[:, :, :1], np.concatenate([image, image[:, :, :1]], -1)):
        out, out_labels = chain(variant, labels)
        assert out.shape == expected
    out, out_labels = chain(image, np.zeros((0, 5), dtype=np.int64))
    assert out.shape == expected and out_labels.shape == (0, 5)


def test_ssd_chain_without_labels_returns_inverters():
    image, _ = synthetic_item()
    out, inverters = SSDDataAugmentation(rng=0)(image, return_inverter=True)
    assert out.shape == (300, 300, 3)
    assert len(inverters) == 4  # resize, flip, crop, expand (photometric ops have none)


def test_a_shared_generator_drives_every_random_op():
    rng = np.random.default_rng(0)
    chain = SSDDataAugmentation(rng=rng)
    assert chain.rng is rng
    assert chain.photometric_distortions.random_hue.rng is rng
    assert chain.random_crop.random_crop.rng is rng
    assert chain.expand.expand.rng is rng
    assert chain.resize.rng is rng


def test_photometric_distortions_keep_labels_and_size():
    image, labels = synthetic_item()
    distort = SSDPhotometricDistortions(rng=0)
    changed = 0
    for _ in range(10):
        out, out_labels = distort(image, labels)
        np.testing.assert_array_equal(out_labels, labels)
        assert out.shape == image.shape and out.dtype == np.uint8
        changed += not np.array_equal(out, image)
    assert changed >= 5


def test_constant_chain_rejects_scale_range_without_one():
    with pytest.raises(ValueError, match="random_scale"):
        DataAugmentationConstantInputSize(random_scale=(1.1, 2.0, 0.5))


def test_satellite_chain_rotations_move_a_block_with_its_box():
    # Only the quarter turns act (no photometric change, no flip, the patch is the square image
    # give or take a pixel, the resize keeps its size), so after every draw the white block and
    # its box agree.
    chain = DataAugmentationSatellite(
        120,
        120,
        random_brightness=(-48, 48, 0.0),
        random_contrast=(0.5, 1.8, 0.0),
        random_saturation=(0.5, 1.8, 0.0),
        random_hue=(18, 0.0),
        random_flip=0.0,
        random_rotate=((90, 180, 270), 1.0),
        min_scale=0.9999,  # patch sides of round(120 * 0.9999..1) = 120 pixels
        max_scale=1.0,
        min_aspect_ratio=0.9999,
        max_aspect_ratio=1.0,
        rng=4,
    )
    image = np.zeros((120, 120, 3), np.uint8)
    image[20:51, 15:41] = 255  # rows 20..50, columns 15..40
    labels = np.array([[1, 15, 20, 40, 50]])
    extents = set()
    for _ in range(8):
        out, out_labels = chain(image, labels)
        ys, xs = np.nonzero(out[..., 0] > 127)
        extent = (xs.min(), ys.min(), xs.max(), ys.max())
        np.testing.assert_array_equal(extent, out_labels[0, 1:])
        extents.add(extent)
    # Every draw rotated (prob 1), and several angles were drawn (the patch may also move the
    # content by a pixel, which the box follows too).
    assert (15, 20, 40, 50) not in extents and len(extents) >= 3
