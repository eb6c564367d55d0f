"""Photometric image transforms: colour space, data type, hue, saturation, brightness, contrast,
gamma, histogram equalisation and channel order. Labels pass through unchanged.

Each op is called as ``op(image, labels=None)`` and returns ``image`` (when ``labels`` is ``None``)
or ``(image, labels)``. The input image is never modified in place.

Expected inputs (as in the original, where the ops are chained with `ConvertColor` and
`ConvertDataType`): `Hue` and `Saturation` take an HSV image (OpenCV's uint8 scale: H in
``[0, 180)``, S and V in ``[0, 255]``) as float32; `Brightness` and `Contrast` take RGB as float32;
`Gamma` and `HistogramEqualization` (on the V channel of HSV) take uint8. Float results are clipped
to ``[0, 255]``.

Random ops take ``rng``: ``None``, an int seed or a ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from data_generator.object_detection_2d_misc_utils import check_prob, draws, pack_output

_CONVERSIONS = {
    ("RGB", "HSV"): cv2.COLOR_RGB2HSV,
    ("HSV", "RGB"): cv2.COLOR_HSV2RGB,
    ("RGB", "GRAY"): cv2.COLOR_RGB2GRAY,
}


class _PhotometricOp:
    """Base: subclasses implement ``apply(image) -> image``; labels pass through."""

    def apply(self, image: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, image, labels=None):
        return pack_output(self.apply(image), labels)


class _RandomPhotometricOp:
    """Base: with probability ``prob``, ``set_parameter()`` then the wrapped op."""

    op: _PhotometricOp

    def __init__(self, prob: float, rng):
        self.prob = check_prob(prob)
        self.rng = np.random.default_rng(rng)

    def set_parameter(self) -> None:
        """Draws the wrapped op's parameter from ``self.rng`` (nothing by default)."""

    def __call__(self, image, labels=None):
        if draws(self.rng, self.prob):
            self.set_parameter()
            return self.op(image, labels)
        return pack_output(image, labels)


class ConvertColor:
    """Converts between RGB, HSV and grayscale with OpenCV.

    Args:
        current: ``'RGB'`` or ``'HSV'``.
        to: ``'RGB'``, ``'HSV'`` or ``'GRAY'`` (``'GRAY'`` from ``'RGB'`` only).
        keep_3ch: for ``'GRAY'``, stack the gray channel three times so the result stays
            ``(H, W, 3)``; otherwise ``(H, W)``.
    """

    def __init__(self, current: str = "RGB", to: str = "HSV", keep_3ch: bool = True):
        if current != to and (current, to) not in _CONVERSIONS:
            raise ValueError(
                f"unsupported conversion current={current!r} to={to!r}; supported: "
                f"{[f'{a}->{b}' for a, b in _CONVERSIONS]}"
            )
        self.current = current
        self.to = to
        self.keep_3ch = keep_3ch

    def __call__(self, image, labels=None):
        if self.current == self.to:
            return pack_output(np.array(image, copy=True), labels)
        image = cv2.cvtColor(image, _CONVERSIONS[(self.current, self.to)])
        if self.to == "GRAY" and self.keep_3ch:
            image = np.stack([image] * 3, axis=-1)
        return pack_output(image, labels)


class ConvertDataType:
    """Converts the image to ``'uint8'`` (rounded, clipped to ``[0, 255]``) or ``'float32'``."""

    def __init__(self, to: str = "uint8"):
        if to not in ("uint8", "float32"):
            raise ValueError(f"to must be 'uint8' or 'float32', got {to!r}")
        self.to = to

    def __call__(self, image, labels=None):
        if self.to == "uint8":
            # Clipping first keeps out-of-range floats from wrapping around.
            image = np.clip(np.round(image), 0, 255).astype(np.uint8)
        else:
            image = np.asarray(image, dtype=np.float32).copy()
        return pack_output(image, labels)


class ConvertTo3Channels:
    """Makes any image ``(H, W, 3)``: gray (2-D or one channel) is stacked, RGBA loses alpha."""

    def __call__(self, image, labels=None):
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        elif image.ndim == 3 and image.shape[2] == 1:
            image = np.concatenate([image] * 3, axis=-1)
        elif image.ndim == 3 and image.shape[2] == 4:
            image = image[:, :, :3].copy()
        elif image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"cannot make 3 channels out of an image of shape {image.shape}")
        return pack_output(image, labels)


class Hue(_PhotometricOp):
    """Adds ``delta`` to the hue channel of a float HSV image, modulo 180.

    Args:
        delta: hue shift in OpenCV units, in ``[-180, 180]``.
    """

    def __init__(self, delta: float):
        if not -180 <= delta <= 180:
            raise ValueError(f"delta must be in [-180, 180], got {delta!r}")
        self.delta = delta

    def apply(self, image):
        image = np.array(image, copy=True)
        # Equal to (h + delta) % 180 for h in [0, 180) and |delta| <= 180, and much faster.
        hue = image[:, :, 0] + self.delta
        hue[hue >= 180.0] -= 180.0
        hue[hue < 0.0] += 180.0
        image[:, :, 0] = hue
        return image


class RandomHue(_RandomPhotometricOp):
    """`Hue` with probability ``prob`` by a delta drawn from ``[-max_delta, max_delta]``."""

    def __init__(self, max_delta: float = 18, prob: float = 0.5, rng=None):
        if not 0 <= max_delta <= 180:
            raise ValueError(f"max_delta must be in [0, 180], got {max_delta!r}")
        super().__init__(prob, rng)
        self.max_delta = max_delta
        self.op = Hue(delta=0)

    def set_parameter(self):
        self.op.delta = self.rng.uniform(-self.max_delta, self.max_delta)


class Saturation(_PhotometricOp):
    """Multiplies the saturation channel of a float HSV image by ``factor`` (> 0), clipped."""

    def __init__(self, factor: float):
        if factor <= 0:
            raise ValueError(f"factor must be > 0, got {factor!r}")
        self.factor = factor

    def apply(self, image):
        image = np.array(image, copy=True)
        image[:, :, 1] = np.clip(image[:, :, 1] * self.factor, 0, 255)
        return image


class _RandomFactorOp(_RandomPhotometricOp):
    """Random op whose parameter is ``factor`` (or ``delta``) drawn from ``[lower, upper]``."""

    parameter = "factor"

    def __init__(self, lower: float, upper: float, prob: float, rng):
        if lower >= upper:
            raise ValueError(f"needs lower < upper, got lower={lower!r}, upper={upper!r}")
        super().__init__(prob, rng)
        self.lower = lower
        self.upper = upper

    def set_parameter(self):
        setattr(self.op, self.parameter, self.rng.uniform(self.lower, self.upper))


class RandomSaturation(_RandomFactorOp):
    """`Saturation` with probability ``prob`` by a factor drawn from ``[lower, upper]``."""

    def __init__(self, lower: float = 0.3, upper: float = 2.0, prob: float = 0.5, rng=None):
        if lower <= 0:
            raise ValueError(f"lower must be > 0, got {lower!r}")
        super().__init__(lower, upper, prob, rng)
        self.op = Saturation(factor=1.0)


class Brightness(_PhotometricOp):
    """Adds ``delta`` to every channel of a float RGB image, clipped to ``[0, 255]``."""

    def __init__(self, delta: float):
        self.delta = delta

    def apply(self, image):
        return np.clip(image + self.delta, 0, 255)


class RandomBrightness(_RandomFactorOp):
    """`Brightness` with probability ``prob`` by a delta drawn from ``[lower, upper]``."""

    parameter = "delta"

    def __init__(self, lower: float = -84, upper: float = 84, prob: float = 0.5, rng=None):
        super().__init__(lower, upper, prob, rng)
        self.op = Brightness(delta=0)


class Contrast(_PhotometricOp):
    """Scales a float RGB image about 127.5 by ``factor`` (> 0), clipped to ``[0, 255]``."""

    def __init__(self, factor: float):
        if factor <= 0:
            raise ValueError(f"factor must be > 0, got {factor!r}")
        self.factor = factor

    def apply(self, image):
        return np.clip(127.5 + self.factor * (image - 127.5), 0, 255)


class RandomContrast(_RandomFactorOp):
    """`Contrast` with probability ``prob`` by a factor drawn from ``[lower, upper]``."""

    def __init__(self, lower: float = 0.5, upper: float = 1.5, prob: float = 0.5, rng=None):
        if lower <= 0:
            raise ValueError(f"lower must be > 0, got {lower!r}")
        super().__init__(lower, upper, prob, rng)
        self.op = Contrast(factor=1.0)


class Gamma(_PhotometricOp):
    """Gamma correction of a uint8 image: ``v' = 255 * (v / 255) ** (1 / gamma)``.

    The lookup table truncates to integers, as the original's did.

    Args:
        gamma: > 0; values > 1 brighten, < 1 darken.
    """

    def __init__(self, gamma: float):
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")
        self.gamma = gamma

    @property
    def gamma(self) -> float:
        return self._gamma

    @gamma.setter
    def gamma(self, value: float) -> None:
        self._gamma = value
        self.gamma_inv = 1.0 / value
        levels = np.arange(256) / 255.0
        self.table = ((levels**self.gamma_inv) * 255).astype(np.uint8)

    def apply(self, image):
        return cv2.LUT(np.asarray(image), self.table)


class RandomGamma(_RandomFactorOp):
    """`Gamma` with probability ``prob`` by a gamma drawn from ``[lower, upper]``."""

    parameter = "gamma"

    def __init__(self, lower: float = 0.25, upper: float = 2.0, prob: float = 0.5, rng=None):
        if lower <= 0:
            raise ValueError(f"lower must be > 0, got {lower!r}")
        super().__init__(lower, upper, prob, rng)
        self.op = Gamma(gamma=1.0)


class HistogramEqualization(_PhotometricOp):
    """Equalises the histogram of the V channel of a uint8 HSV image (``cv2.equalizeHist``)."""

    def apply(self, image):
        image = np.array(image, copy=True)
        image[:, :, 2] = cv2.equalizeHist(np.ascontiguousarray(image[:, :, 2]))
        return image


class RandomHistogramEqualization(_RandomPhotometricOp):
    """`HistogramEqualization` with probability ``prob``."""

    def __init__(self, prob: float = 0.5, rng=None):
        super().__init__(prob, rng)
        self.op = HistogramEqualization()


class ChannelSwap(_PhotometricOp):
    """Reorders the channels: ``image[:, :, order]``."""

    def __init__(self, order: Sequence[int]):
        if sorted(order) != list(range(len(order))):
            raise ValueError(f"order must be a permutation of the channel indices, got {order!r}")
        self.order = tuple(order)

    def apply(self, image):
        return np.ascontiguousarray(np.asarray(image)[:, :, list(self.order)])


class RandomChannelSwap(_RandomPhotometricOp):
    """`ChannelSwap` with probability ``prob`` to one of the five non-identity orders of 3."""

    permutations = ((0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))

    def __init__(self, prob: float = 0.5, rng=None):
        super().__init__(prob, rng)
        self.op = ChannelSwap(order=(0, 1, 2))

    def set_parameter(self):
        self.op.order = self.permutations[self.rng.integers(len(self.permutations))]
