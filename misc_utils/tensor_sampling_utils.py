"""Sub-sampling and up-sampling of weight tensors, for transfer learning (numpy).

`sample_tensors` is the original ssd_keras function: it picks (or, going up, spreads out) indices
along every axis of a first tensor - typically a conv kernel - and applies the same selection to
further tensors along chosen axes - typically the bias - so that kernel and bias stay aligned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

INITIALIZERS = ("gaussian", "zeros", "ones")


def _new_tensor(shape, init: str, mean: float, stddev: float, dtype, rng: np.random.Generator):
    if init == "gaussian":
        return rng.normal(loc=mean, scale=stddev, size=shape).astype(dtype)
    if init == "zeros":
        return np.zeros(shape, dtype=dtype)
    if init == "ones":
        return np.ones(shape, dtype=dtype)
    raise ValueError(f"init entries must be one of {list(INITIALIZERS)}, got {init!r}")


def _check_arguments(tensors, sampling_instructions, axes, init) -> list[str]:
    """ValueErrors naming the argument of `sample_tensors`; returns ``init`` with its default."""
    first = tensors[0]
    if (
        not isinstance(sampling_instructions, (list, tuple))
        or len(sampling_instructions) != first.ndim
    ):
        raise ValueError(
            "sampling_instructions must be a list with one entry per axis of the first tensor "
            f"(shape {first.shape}), got {sampling_instructions!r}"
        )
    if init is None:
        init = ["gaussian"] * len(tensors)
    if len(init) != len(tensors):
        raise ValueError(f"init must have one entry per tensor ({len(tensors)}), got {init!r}")
    if len(tensors) > 1:
        if axes is None or len(axes) != len(tensors) - 1:
            raise ValueError(
                f"axes must have one entry for each tensor after the first ({len(tensors) - 1}), "
                f"got {axes!r}"
            )
        for j, (tensor, tensor_axes) in enumerate(zip(tensors[1:], axes), start=1):
            if len(tensor_axes) != tensor.ndim or any(
                not 0 <= a < first.ndim or tensor.shape[k] != first.shape[a]
                for k, a in enumerate(tensor_axes)
            ):
                raise ValueError(
                    f"axes[{j - 1}] = {list(tensor_axes)} does not map weights_list[{j}] "
                    f"(shape {tensor.shape}) onto axes of the first tensor (shape {first.shape})"
                )
    return init


def _axis_selection(axis: int, instruction, length: int, rng: np.random.Generator):
    """One axis's ``(source indices, target indices, new length)`` for ``instruction``."""
    if isinstance(instruction, (list, tuple, np.ndarray)):
        indices = np.asarray(instruction, dtype=np.int64)
        if indices.ndim != 1 or (
            indices.size and (indices.min() < -length or indices.max() >= length)
        ):
            raise ValueError(
                f"sampling_instructions[{axis}] holds indices outside axis {axis} of length "
                f"{length}: {list(instruction)}"
            )
        return indices, np.arange(len(indices)), len(indices)
    if not isinstance(instruction, (int, np.integer)) or isinstance(instruction, bool):
        raise ValueError(
            f"sampling_instructions[{axis}] must be an int or a list of indices, "
            f"got {instruction!r}"
        )
    n = int(instruction)
    if n <= 0:
        raise ValueError(f"sampling_instructions[{axis}] must be positive, got {n}")
    if n == length:
        return np.arange(n), np.arange(n), n
    if n < length:
        # Index 0 (the background class of a classifier) always stays.
        rest = np.sort(rng.choice(np.arange(1, length), n - 1, replace=False))
        return np.concatenate([[0], rest]).astype(np.int64), np.arange(n), n
    rest = np.sort(rng.choice(np.arange(1, n), length - 1, replace=False))
    return np.arange(length), np.concatenate([[0], rest]).astype(np.int64), n


def sample_tensors(
    weights_list: Sequence[np.ndarray],
    sampling_instructions: Sequence,
    axes: Sequence[Sequence[int]] | None = None,
    init: Sequence[str] | None = None,
    mean: float = 0.0,
    stddev: float = 0.005,
    rng: np.random.Generator | int | None = None,
) -> list[np.ndarray]:
    """Samples the same indices from a list of tensors.

    One instruction per axis of the first tensor:

    - a list (or tuple / array) of indices: keep exactly those, in that order (may repeat or
      reorder);
    - an int equal to the axis length: keep the axis as it is;
    - an int smaller than the axis length: keep index 0 (the background class, for a classifier) and
      ``n - 1`` other indices drawn at random, in increasing order;
    - an int larger than the axis length: up-sample: the original elements go, in order, to index 0
      and ``length - 1`` other random positions; the new positions are filled by ``init``.

    Further tensors are sampled along the axes of the first tensor named in ``axes``, with the very
    same indices (e.g. the bias along the kernel's output-channel axis).

    Args:
        weights_list: the tensors; the first defines the axes.
        sampling_instructions: one instruction per axis of ``weights_list[0]`` (see above).
        axes: for each tensor after the first, the axes of the first tensor its axes correspond to,
            e.g. ``[[3]]`` for a conv bias. Needed when ``len(weights_list) > 1``.
        init: per tensor, how new positions are filled: ``'gaussian'`` (``N(mean, stddev)``),
            ``'zeros'`` or ``'ones'``. Default: ``'gaussian'`` for all.
        mean: mean of the gaussian initialiser.
        stddev: standard deviation of the gaussian initialiser.
        rng: a numpy Generator or seed for the random choices (default: a fresh Generator).

    Returns:
        The sampled tensors, in the order of ``weights_list``, with the dtype of their inputs.

    Example:
        >>> kernel = np.zeros((3, 3, 8, 12)); bias = np.arange(12.0)
        >>> keep = [c + 3 * box for box in range(4) for c in (0, 2)]  # classes 0 and 2 of 3
        >>> k, b = sample_tensors([kernel, bias], [3, 3, 8, keep], axes=[[3]])
        >>> k.shape, b.tolist()
        ((3, 3, 8, 8), [0.0, 2.0, 3.0, 5.0, 6.0, 8.0, 9.0, 11.0])
    """
    if len(weights_list) == 0:
        raise ValueError("weights_list is empty")
    tensors = [np.asarray(w) for w in weights_list]
    first = tensors[0]
    init = _check_arguments(tensors, sampling_instructions, axes, init)
    rng = np.random.default_rng(rng)
    # Per axis of the first tensor: where the kept elements come from and go to, the new length.
    source_index, target_index, out_shape = [], [], []
    for axis, instruction in enumerate(sampling_instructions):
        source, target, n = _axis_selection(axis, instruction, first.shape[axis], rng)
        source_index.append(source)
        target_index.append(target)
        out_shape.append(n)

    outputs = []
    for j, tensor in enumerate(tensors):
        tensor_axes = list(range(first.ndim)) if j == 0 else list(axes[j - 1])
        shape = [out_shape[a] for a in tensor_axes]
        out = _new_tensor(shape, init[j], mean, stddev, tensor.dtype, rng)
        out[np.ix_(*[target_index[a] for a in tensor_axes])] = tensor[
            np.ix_(*[source_index[a] for a in tensor_axes])
        ]
        outputs.append(out)
    return outputs
