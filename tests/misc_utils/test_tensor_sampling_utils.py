"""Tests of sample_tensors: the original's golden cases and its invariants."""

import numpy as np
import pytest

from misc_utils.tensor_sampling_utils import sample_tensors

DETERMINISTIC = [
    "subsample_classes_0_2",
    "reorder_classes_2_0_1",
    "subsample_classes_0_2_and_in_channels",
]


def golden_case(golden, name):
    fixture = golden("sample_tensors")
    case = next(c for c in fixture.meta["cases"] if c["name"] == name)
    return fixture.npz, case


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_list_instructions_match_the_original(golden, name):
    z, case = golden_case(golden, name)
    kernel, bias = sample_tensors(
        [z["kernel"], z["bias"]],
        case["sampling_instructions"],
        axes=case["axes"],
        init=case["init"],
        mean=case["mean"],
        stddev=case["stddev"],
    )
    np.testing.assert_array_equal(kernel, z[f"{name}_kernel"])
    np.testing.assert_array_equal(bias, z[f"{name}_bias"])
    assert kernel.dtype == z["kernel"].dtype


def test_upsampling_keeps_the_original_channels_in_order(golden):
    z, case = golden_case(golden, "upsample_12_to_20")
    kernel, bias = sample_tensors(
        [z["kernel"], z["bias"]],
        case["sampling_instructions"],
        axes=case["axes"],
        init=case["init"],
        mean=case["mean"],
        stddev=case["stddev"],
        rng=0,
    )
    assert kernel.shape == tuple(case["output_kernel_shape"]) and bias.shape == (20,)
    # Find where each original channel went: it must appear whole, in order, with 0 first.
    positions = [
        next(p for p in range(20) if np.array_equal(kernel[..., p], z["kernel"][..., c]))
        for c in range(12)
    ]
    assert positions[0] == 0 and positions == sorted(positions) and len(set(positions)) == 12
    np.testing.assert_array_equal(bias[positions], z["bias"])
    new = sorted(set(range(20)) - set(positions))
    np.testing.assert_array_equal(bias[new], 0.0)
    assert 0.003 < kernel[..., new].std() < 0.007 and abs(kernel[..., new].mean()) < 0.002


def test_random_subsampling_keeps_index_zero_and_is_seeded():
    kernel = np.arange(2 * 10, dtype=np.float32).reshape(2, 10)
    bias = np.arange(10, dtype=np.float32)
    a = sample_tensors([kernel, bias], [2, 4], axes=[[1]], rng=7)
    b = sample_tensors([kernel, bias], [2, 4], axes=[[1]], rng=7)
    np.testing.assert_array_equal(a[0], b[0])
    kept = a[1].astype(int)
    assert kept[0] == 0 and list(kept) == sorted(kept) and len(set(kept)) == 4
    np.testing.assert_array_equal(a[0], kernel[:, kept])  # kernel and bias stay aligned


def test_same_length_instruction_keeps_the_axis():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 4, 6))
    (out,) = sample_tensors([kernel], [3, 3, 4, 6])
    np.testing.assert_array_equal(out, kernel)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(sampling_instructions=[3, 3, 8]), "one entry per axis"),
        (dict(sampling_instructions=[3, 3, 8, [0, 12]]), "outside axis 3"),
        (dict(sampling_instructions=[3, 3, 8, "all"]), "int or a list"),
        (dict(sampling_instructions=[3, 3, 8, 0]), "positive"),
        (dict(sampling_instructions=[3, 3, 8, 12], axes=None), "axes"),
        (dict(sampling_instructions=[3, 3, 8, 12], axes=[[2]]), r"axes\[0\]"),
        (dict(sampling_instructions=[3, 3, 8, 12], init=["gaussian"]), "init"),
        (dict(sampling_instructions=[3, 3, 8, 12], init=["uniform", "zeros"]), "init"),
    ],
)
def test_bad_arguments_raise_value_errors(kwargs, message):
    call = dict(weights_list=[np.zeros((3, 3, 8, 12)), np.zeros(12)], axes=[[3]])
    call.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sample_tensors(**call)
