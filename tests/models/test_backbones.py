"""ImageNet VGG16 -> SSD's reduced VGG16 (``fc_reduced``), checked entry by entry by index."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from models.backbones import VGG16_CONV_LAYERS, vgg16_fc_reduced


def _fc6_expected_index(i, j, c, o):
    """Row and column of VGG16's fc1 kernel that SSD's fc6[i, j, c, o] comes from.

    fc1 reads pool5 (7, 7, 512) flattened as row, column, channel: row index
    ``(r * 7 + q) * 512 + c``. fc6 keeps grid rows/columns 0, 3, 6 (r = 3i, q = 3j) and every
    4th of the 4096 outputs (4o).
    """
    return ((3 * i) * 7 + 3 * j) * 512 + c, 4 * o


def _vgg16_weights_with_index_values():
    """Every fc entry holds its own flat index, so a value says where it came from."""
    weights = {
        name: [np.full((3, 3, 2, 2), k, np.int64), np.full((2,), -k, np.int64)]
        for k, name in enumerate(VGG16_CONV_LAYERS, start=1)
    }
    weights["fc1"] = [
        np.arange(25088 * 4096, dtype=np.int32).reshape(25088, 4096),
        np.arange(4096, dtype=np.int32) + 10**9,
    ]
    weights["fc2"] = [
        np.arange(4096 * 4096, dtype=np.int32).reshape(4096, 4096),
        np.arange(4096, dtype=np.int32) + 2 * 10**9,
    ]
    return weights


def test_vgg16_fc_reduction_index_mapping_is_exact():
    weights = _vgg16_weights_with_index_values()
    reduced = vgg16_fc_reduced(weights)
    assert list(reduced) == [*VGG16_CONV_LAYERS.values(), "fc6", "fc7"]
    for vgg_name, ssd_name in VGG16_CONV_LAYERS.items():
        for got, want in zip(reduced[ssd_name], weights[vgg_name]):
            np.testing.assert_array_equal(got, want)

    fc6_kernel, fc6_bias = reduced["fc6"]
    assert fc6_kernel.shape == (3, 3, 512, 1024) and fc6_bias.shape == (1024,)
    i, j, c, o = np.meshgrid(
        np.arange(3), np.arange(3), np.arange(512), np.arange(1024), indexing="ij"
    )
    row, column = _fc6_expected_index(i, j, c, o)
    np.testing.assert_array_equal(fc6_kernel, row * 4096 + column)  # = fc1[row, column]
    np.testing.assert_array_equal(fc6_bias, 10**9 + 4 * np.arange(1024))
    # Two entries by hand: fc6[1, 2, 5, 7] = fc1[(3 * 7 + 6) * 512 + 5, 28].
    assert fc6_kernel[1, 2, 5, 7] == (27 * 512 + 5) * 4096 + 28
    assert fc6_kernel[2, 0, 0, 1023] == (42 * 512) * 4096 + 4092

    fc7_kernel, fc7_bias = reduced["fc7"]
    assert fc7_kernel.shape == (1, 1, 1024, 1024) and fc7_bias.shape == (1024,)
    a, b = np.meshgrid(np.arange(1024), np.arange(1024), indexing="ij")
    np.testing.assert_array_equal(fc7_kernel[0, 0], (4 * a) * 4096 + 4 * b)  # fc2[4a, 4b]
    np.testing.assert_array_equal(fc7_bias, 2 * 10**9 + 4 * np.arange(1024))


def test_vgg16_without_top_is_refused():
    weights = _vgg16_weights_with_index_values()
    del weights["fc1"], weights["fc2"]
    with pytest.raises(ValueError, match=r"missing layer\(s\) \['fc1', 'fc2'\].*include_top=True"):
        vgg16_fc_reduced(weights)


@pytest.mark.slow
def test_ssd300_and_ssd512_load_a_keras_vgg16_file(tmp_path):
    """A file written by keras.applications.VGG16(include_top=True, weights=None)."""
    from models.keras_ssd300 import SSD300_VOC, ssd_300
    from models.keras_ssd512 import SSD512_VOC, ssd_512

    keras.utils.set_random_seed(0)
    vgg16 = keras.applications.VGG16(include_top=True, weights=None)
    path = tmp_path / "vgg16.weights.h5"
    vgg16.save_weights(path)
    source = {name: vgg16.get_layer(name).get_weights() for name in [*VGG16_CONV_LAYERS, "fc1"]}
    fc2_kernel, fc2_bias = vgg16.get_layer("fc2").get_weights()
    del vgg16

    i, j, c, o = np.meshgrid(
        np.arange(3), np.arange(3), np.arange(512), np.arange(1024), indexing="ij"
    )
    row, column = _fc6_expected_index(i, j, c, o)
    fc1_kernel, fc1_bias = source.pop("fc1")
    for builder, preset in ((ssd_300, SSD300_VOC), (ssd_512, SSD512_VOC)):
        keras.utils.set_random_seed(1)
        model = builder(**preset, backbone_weights=path)
        for vgg_name, ssd_name in VGG16_CONV_LAYERS.items():
            for got, want in zip(model.get_layer(ssd_name).get_weights(), source[vgg_name]):
                np.testing.assert_array_equal(got, want, err_msg=ssd_name)
        fc6_kernel, fc6_bias = model.get_layer("fc6").get_weights()
        np.testing.assert_array_equal(fc6_kernel, fc1_kernel[row, column])
        np.testing.assert_array_equal(fc6_bias, fc1_bias[4 * np.arange(1024)])
        fc7_kernel, fc7_bias = model.get_layer("fc7").get_weights()
        a, b = np.meshgrid(np.arange(1024), np.arange(1024), indexing="ij")
        np.testing.assert_array_equal(fc7_kernel[0, 0], fc2_kernel[4 * a, 4 * b])
        np.testing.assert_array_equal(fc7_bias, fc2_bias[4 * np.arange(1024)])
        del model
        keras.backend.clear_session()
