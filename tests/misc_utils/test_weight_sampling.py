"""sample_ssd_weights: the sub-sampled model's kept-class logits equal the old model's, boxes too.

Every check runs the old and the new model on the same input and compares the raw (pre-softmax)
outputs of the classifier heads: new channel ``box * n_new + j`` must equal old channel
``box * n_old + class_indices[j]``. The heads get random biases first, so a misaligned bias would
show; the box heads and the anchors must be untouched.
"""

from __future__ import annotations

import json

import h5py
import keras
import numpy as np
import pytest

from misc_utils import class_indices, sample_ssd_weights
from models.keras_ssd7 import build_model
from models.legacy_weights import load_legacy_weights

SHAPES = ["background", "circle", "square", "triangle", "cross", "diamond"]
SSD7_KWARGS = dict(
    image_size=(64, 96, 3),
    scales=[0.08, 0.16, 0.32, 0.64, 0.96],
    aspect_ratios_global=[0.5, 1.0, 2.0],
    normalize_coords=True,
    subtract_mean=127.5,
    divide_by_stddev=127.5,
)
SSD7_CONF = [f"classes{i}" for i in range(4, 8)]
SSD7_LOC = [f"boxes{i}" for i in range(4, 8)]
# Kept in a new order: new class 1 is old 5 (diamond), 2 is old 1 (circle), 3 is old 4 (cross).
KEEP = ["background", "diamond", "circle", "cross"]
KEEP_INDICES = [0, 5, 1, 4]


def _randomize(model, seed):
    """Random values for every weight (BN variances positive), so that nothing is trivially 0."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for variable in layer.weights:
            values = rng.normal(0.0, 0.1, size=variable.shape)
            if "variance" in variable.name:
                values = np.abs(values) + 0.5
            variable.assign(values.astype(variable.dtype))


def _ssd7(n_classes, seed=None):
    keras.utils.set_random_seed(0)
    model = build_model(n_classes=n_classes, **SSD7_KWARGS)
    if seed is not None:
        _randomize(model, seed)
    return model


def _outputs(model, conf_names, loc_names, images):
    """Raw conf-head outputs, loc-head outputs and the model output, in one eager call."""
    names = list(conf_names) + list(loc_names)
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names] + [model.output])
    outputs = [np.asarray(a) for a in probe(images, training=False)]
    n = len(conf_names)
    return outputs[:n], outputs[n:-1], outputs[-1]


def _images(shape, n=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, *shape)).astype("float32")


def assert_sampled(old, new, conf_names, loc_names, keep_indices, n_old, images):
    """The check of the issue: kept logits equal, box outputs and anchors unchanged."""
    n_new = len(keep_indices)
    old_conf, old_loc, old_out = _outputs(old, conf_names, loc_names, images)
    new_conf, new_loc, new_out = _outputs(new, conf_names, loc_names, images)
    for name, a, b in zip(conf_names, old_conf, new_conf):
        n_boxes = a.shape[-1] // n_old
        assert b.shape[-1] == n_boxes * n_new, name
        old_logits = a.reshape(*a.shape[:-1], n_boxes, n_old)[..., keep_indices]
        new_logits = b.reshape(*b.shape[:-1], n_boxes, n_new)
        scale = np.abs(old_logits).max()
        assert scale > 0.1  # not a vacuous comparison
        # The kept channels are the same numbers; only the convolution's summation order may
        # differ with the number of output channels (float32 rounding relative to the scale).
        np.testing.assert_allclose(
            new_logits, old_logits, rtol=1e-5, atol=1e-5 * max(1.0, scale), err_msg=name
        )
    for name, a, b in zip(loc_names, old_loc, new_loc):
        atol = 1e-5 * max(1.0, np.abs(a).max())
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=atol, err_msg=name)
    np.testing.assert_allclose(new_out[..., -12:], old_out[..., -12:], rtol=1e-5, atol=1e-5)
    # The softmax scores are the old logits of the kept classes, renormalised over them.
    logits = np.concatenate(
        [a.reshape(len(images), -1, n_old)[..., keep_indices] for a in old_conf], axis=1
    )
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    # A logit rounding difference d moves a score by at most d / 2 (see the logit tolerance).
    atol = 1e-5 * max(1.0, np.abs(logits).max())
    np.testing.assert_allclose(new_out[..., :n_new], expected, rtol=1e-4, atol=atol)


@pytest.fixture(scope="module")
def old_ssd7():
    return _ssd7(5, seed=1)


@pytest.fixture(scope="module")
def images():
    return _images(SSD7_KWARGS["image_size"])


def test_importing_misc_utils_loads_no_keras(imports_leave_out):
    imports_leave_out(["misc_utils"])


def test_class_indices_names_and_indices():
    assert class_indices(SHAPES, KEEP) == KEEP_INDICES
    assert class_indices(SHAPES, [0, 5, "circle", 4]) == KEEP_INDICES
    assert class_indices(SHAPES, SHAPES) == list(range(6))


@pytest.mark.parametrize(
    "keep, message",
    [
        (["background", "hexagon"], "'hexagon' is not one of the old classes"),
        (["background", 6], "6 is not an index into old_classes"),
        (["circle", "square"], "must start with the background"),
        (["background", "circle", 1], "repeats ['circle']"),
        (["background"], "at least one class"),
        (["background", 1.0], "must be a class name or an index"),
    ],
)
def test_class_indices_errors(keep, message):
    with pytest.raises(ValueError) as error:
        class_indices(SHAPES, keep)
    assert message in str(error.value)


def test_ssd7_model_to_h5_loads_by_name_in_keras_and_ours(tmp_path, old_ssd7, images):
    path = tmp_path / "ssd7_3.h5"
    report = sample_ssd_weights(old_ssd7, SHAPES, KEEP, path)
    assert report.n_classes == 3 and report.class_indices == KEEP_INDICES
    assert report.new_classes == KEEP
    assert report.conf_layers["classes4"] == ((3, 3, 64, 24), (3, 3, 64, 16))
    assert report.n_boxes == dict.fromkeys(SSD7_CONF, 4)
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["ssd_keras_classes"]) == KEEP

    new = _ssd7(3, seed=2)  # different weights everywhere before loading
    new.load_weights(str(path), by_name=True)  # Keras' own Keras 2 reader
    assert_sampled(old_ssd7, new, SSD7_CONF, SSD7_LOC, KEEP_INDICES, 6, images)

    ours = _ssd7(3, seed=3)
    loaded = load_legacy_weights(ours, path)
    assert not loaded.missing_in_file and not loaded.mismatched
    assert_sampled(old_ssd7, ours, SSD7_CONF, SSD7_LOC, KEEP_INDICES, 6, images)


def test_ssd7_weights_h5_source_and_output(tmp_path, old_ssd7, images):
    source = tmp_path / "old.weights.h5"
    old_ssd7.save_weights(source)
    reader = _ssd7(5, seed=4)
    new = _ssd7(3, seed=5)
    out = tmp_path / "new.weights.h5"
    report = sample_ssd_weights(str(source), SHAPES, KEEP, out, old_model=reader, new_model=new)
    assert report.output_path == str(out)
    assert_sampled(old_ssd7, new, SSD7_CONF, SSD7_LOC, KEEP_INDICES, 6, images)
    fresh = _ssd7(3, seed=6)
    fresh.load_weights(str(out))  # the Keras 3 file loads directly into a new model
    assert_sampled(old_ssd7, fresh, SSD7_CONF, SSD7_LOC, KEEP_INDICES, 6, images)


def test_ssd7_keras_file_source_and_keras_output(tmp_path, old_ssd7, images):
    source = tmp_path / "old.keras"
    old_ssd7.save(source)
    new = _ssd7(3)
    out = tmp_path / "new.keras"
    sample_ssd_weights(source, SHAPES, KEEP, out, new_model=new)
    restored = keras.models.load_model(out, compile=False)
    assert_sampled(old_ssd7, restored, SSD7_CONF, SSD7_LOC, KEEP_INDICES, 6, images)


def test_keep_all_classes_is_the_identity_and_reordering_permutes(tmp_path, old_ssd7, images):
    new = _ssd7(5, seed=7)
    sample_ssd_weights(old_ssd7, SHAPES, SHAPES, new_model=new)
    for a, b in zip(old_ssd7.get_weights(), new.get_weights()):
        np.testing.assert_array_equal(a, b)
    order = [0, 3, 1, 5, 2, 4]
    sample_ssd_weights(old_ssd7, SHAPES, order, new_model=new)
    assert_sampled(old_ssd7, new, SSD7_CONF, SSD7_LOC, order, 6, images)


def _write_keras2(path, model, full_model=True, gamma_name=None):
    """``model``'s weights in the original ssd_keras (Keras 2) layout, written with h5py.

    Layer groups by name, ``layer_names`` / ``weight_names`` byte-string attributes and
    ``<layer>/<weight>:0`` datasets; under ``model_weights`` for a full-model file, with an
    ``optimizer_weights`` group that must not be copied. ``gamma_name`` renames the L2 norm
    weight as the original did (``conv4_3_norm_gamma``).
    """
    with h5py.File(path, "w") as f:
        if full_model:
            f.attrs["model_config"] = b"{}"
            f.create_group("optimizer_weights").create_dataset("Adam/iterations:0", data=7)
            group = f.create_group("model_weights")
        else:
            group = f
        group.attrs["keras_version"] = b"2.1.5"
        group.attrs["backend"] = b"tensorflow"
        group.attrs["layer_names"] = np.array([layer.name.encode() for layer in model.layers])
        for layer in model.layers:
            layer_group = group.create_group(layer.name)
            names = []
            for variable in layer.weights:
                short = variable.name
                if gamma_name and short == "gamma" and "norm" in layer.name:
                    short = gamma_name
                names.append(f"{layer.name}/{short}:0")
                layer_group.create_dataset(names[-1], data=np.asarray(variable))
            layer_group.attrs["weight_names"] = np.array([n.encode() for n in names], dtype="S")


@pytest.mark.parametrize("full_model", [True, False])
def test_ssd7_legacy_layout_source(tmp_path, old_ssd7, images, full_model):
    source = tmp_path / "legacy.h5"
    _write_keras2(source, old_ssd7, full_model=full_model)
    out = tmp_path / "sampled.h5"
    report = sample_ssd_weights(source, SHAPES, KEEP, out)
    assert sorted(report.conf_layers) == SSD7_CONF
    with h5py.File(out, "r") as f:
        assert "optimizer_weights" not in f and "model_config" not in f.attrs
        version = f.attrs["keras_version"]
        assert (version.decode() if isinstance(version, bytes) else version) == "2.1.5"
    new = _ssd7(3, seed=8)
    new.load_weights(str(out), by_name=True)
    assert_sampled(old_ssd7, new, SSD7_CONF, SSD7_LOC, KEEP_INDICES, 6, images)


def test_mismatch_errors(tmp_path, old_ssd7):
    # 5 names for 6 scores per box: 24 channels are no multiple of 5.
    with pytest.raises(ValueError, match=r"'classes4' has 24 output channels.*5 entries"):
        sample_ssd_weights(old_ssd7, SHAPES[:5], ["background", "circle"])
    # 8 names: 24 channels = 3 x 8, but the box layer says 4 boxes of 6 scores.
    eight = SHAPES + ["star", "moon"]
    with pytest.raises(ValueError, match=r"4 boxes per cell of 'boxes4', i.e. 6 scores per box"):
        sample_ssd_weights(old_ssd7, eight, ["background", "star"])
    with pytest.raises(ValueError, match="'hexagon' is not one of the old classes"):
        sample_ssd_weights(old_ssd7, SHAPES, ["background", "hexagon"])
    # A new model built with the wrong n_classes: nothing is assigned, the message says why.
    wrong = _ssd7(2, seed=9)
    before = [w.copy() for w in wrong.get_weights()]
    with pytest.raises(
        ValueError, match=r"'classes4' weight .*\(3, 3, 64, 16\) but \(3, 3, 64, 12\)"
    ):
        sample_ssd_weights(old_ssd7, SHAPES, KEEP, new_model=wrong)
    for a, b in zip(before, wrong.get_weights()):
        np.testing.assert_array_equal(a, b)
    # A Keras 3 file read through a model of the wrong size.
    source = tmp_path / "old.weights.h5"
    old_ssd7.save_weights(source)
    with pytest.raises(ValueError, match=r"does not fit old_model.*value\.shape=\(3, 3, 64, 24\)"):
        sample_ssd_weights(source, SHAPES, KEEP, old_model=_ssd7(3))
    with pytest.raises(ValueError, match="stores no layer names, so pass old_model="):
        sample_ssd_weights(source, SHAPES, KEEP)


def test_file_and_output_errors(tmp_path, old_ssd7):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        sample_ssd_weights(tmp_path / "missing.h5", SHAPES, KEEP)
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match="neither a .keras archive nor an HDF5"):
        sample_ssd_weights(text, SHAPES, KEEP)
    with pytest.raises(ValueError, match=r"pass new_model= \(built with n_classes=3\)"):
        sample_ssd_weights(old_ssd7, SHAPES, KEEP, tmp_path / "x.weights.h5")
    with pytest.raises(ValueError, match="must end with '.h5'"):
        sample_ssd_weights(old_ssd7, SHAPES, KEEP, tmp_path / "x.npz")
    source = tmp_path / "legacy.h5"
    _write_keras2(source, old_ssd7)
    size = source.stat().st_size
    with pytest.raises(ValueError, match="is the source file"):
        sample_ssd_weights(source, SHAPES, KEEP, source)
    assert source.stat().st_size == size  # the source is left as it was
    # No classifier head at all (a plain CNN), then explicit conf_layers.
    inputs = keras.Input((8, 8, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(12, 3, name="head")(inputs))
    with pytest.raises(ValueError, match="no classifier layer"):
        sample_ssd_weights(plain, ["background", "a", "b"], ["background", "b"])
    report = sample_ssd_weights(plain, ["background", "a", "b"], [0, 2], conf_layers=["head"])
    kernel = np.asarray(plain.get_layer("head").kernel)
    # 12 channels = 4 boxes x 3 scores; keeping classes 0 and 2 keeps channels 0, 2, 3, 5, ...
    np.testing.assert_array_equal(
        report.layers["head"][0][1], kernel[..., [0, 2, 3, 5, 6, 8, 9, 11]]
    )
    with pytest.raises(ValueError, match=r"conf_layers \['nope'\]"):
        sample_ssd_weights(plain, ["background", "a", "b"], [0, 2], conf_layers=["nope"])


def test_other_architecture_as_new_model_is_refused(old_ssd7):
    inputs = keras.Input((8, 8, 3))
    other = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="head")(inputs))
    with pytest.raises(ValueError, match=r"its layers \['head'\] have no weights there"):
        sample_ssd_weights(old_ssd7, SHAPES, KEEP, new_model=other)


VOC = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip
SSD300_SOURCES = ("conv4_3_norm", "fc7", "conv6_2", "conv7_2", "conv8_2", "conv9_2")


def _vgg_ssd(builder, preset, seed):
    """A VGG SSD with its seeded he_normal kernels and random biases and L2-norm scales (random
    kernels everywhere would blow the activations of 20 layers up to ~1e6)."""
    keras.utils.set_random_seed(0)
    model = builder(**preset)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if len(variable.shape) == 1:
            variable.assign(rng.normal(0.5, 0.5, size=variable.shape).astype(variable.dtype))
    return model


@pytest.mark.slow
def test_ssd300_legacy_layout_to_3_classes(tmp_path):
    """The original tutorial's case on SSD300: 20 VOC classes -> person, car, dog."""
    from models.keras_ssd300 import SSD300_VOC, ssd_300

    old = _vgg_ssd(ssd_300, SSD300_VOC, seed=11)
    source = tmp_path / "VGG_VOC0712_SSD_300x300.h5"
    _write_keras2(source, old, gamma_name="conv4_3_norm_gamma")
    out = tmp_path / "ssd300_3.h5"
    keep = ["background", "person", "car", "dog"]
    report = sample_ssd_weights(source, VOC, keep, out)
    conf = [f"{s}_mbox_conf" for s in SSD300_SOURCES]
    assert sorted(report.conf_layers) == sorted(conf)
    assert [report.n_boxes[n] for n in conf] == [4, 6, 6, 6, 4, 4]
    assert report.conf_layers["fc7_mbox_conf"] == ((3, 3, 1024, 126), (3, 3, 1024, 24))

    new = ssd_300(**{**SSD300_VOC, "n_classes": 3})
    legacy = load_legacy_weights(new, out)
    assert not legacy.missing_in_file and not legacy.mismatched
    images = _images((300, 300, 3), n=1)
    loc = [f"{s}_mbox_loc" for s in SSD300_SOURCES]
    assert_sampled(old, new, conf, loc, [0, 15, 7, 12], 21, images)


@pytest.mark.slow
def test_ssd512_model_to_weights_h5(tmp_path):
    """SSD512 (7 predictor layers, conv10_2) from a model, 20 -> 2 classes in a new order."""
    from models.keras_ssd512 import SSD512_VOC, ssd_512

    old = _vgg_ssd(ssd_512, SSD512_VOC, seed=12)
    new = ssd_512(**{**SSD512_VOC, "n_classes": 2})
    out = tmp_path / "ssd512_2.weights.h5"
    report = sample_ssd_weights(old, VOC, [0, "sheep", "cow"], out, new_model=new)
    sources = (*SSD300_SOURCES, "conv10_2")
    conf = [f"{s}_mbox_conf" for s in sources]
    assert sorted(report.conf_layers) == sorted(conf)
    fresh = ssd_512(**{**SSD512_VOC, "n_classes": 2})
    fresh.load_weights(str(out))
    loc = [f"{s}_mbox_loc" for s in sources]
    assert_sampled(old, fresh, conf, loc, [0, 17, 10], 21, _images((512, 512, 3), n=1))
