"""Reading images as RGB uint8, whatever the file holds.

The original ssd_keras read images with ``PIL.Image.open`` + ``np.array``: a grayscale JPEG came
back 2-D, an RGBA PNG with 4 channels and a palette PNG as a 2-D array of palette indices, which
then broke the batch. Here every image comes back as ``(height, width, 3)`` ``uint8`` in RGB order:

- grayscale (1 channel) is repeated on the three channels;
- RGBA / grayscale+alpha: the alpha channel is dropped (the colour values are kept as stored,
  like the original's ``image[:, :, :3]``);
- palette images are expanded through their palette;
- 16-bit images are scaled down to 8 bits;
- the format is detected from the file content, so a PNG named ``.jpg`` reads correctly;
- the EXIF orientation tag is ignored: Pascal VOC style annotations refer to the stored pixel
  grid, which is also what the original (PIL without ``exif_transpose``) read.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

_IMREAD_FLAGS = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION


class ImageReadError(OSError):
    """An image file that is missing or that OpenCV cannot decode."""


def decode_image(data: bytes | np.ndarray, source: str = "<bytes>") -> np.ndarray:
    """Decodes an encoded image (JPEG, PNG, BMP, ...) to RGB uint8.

    Args:
        data: the encoded file content.
        source: a name for error messages (usually the file path).

    Returns:
        The image, shape `(height, width, 3)`, dtype `uint8`, channels in RGB order.

    Raises:
        ImageReadError: when the bytes are not a decodable image.
    """
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    if buffer.size == 0:
        raise ImageReadError(f"{source}: the file is empty")
    image = cv2.imdecode(buffer, _IMREAD_FLAGS)
    if image is None:
        raise ImageReadError(f"{source}: not a decodable image ({buffer.size} bytes)")
    return np.ascontiguousarray(image)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as RGB uint8.

    Args:
        path: the image file.

    Returns:
        The image, shape `(height, width, 3)`, dtype `uint8`, channels in RGB order.

    Raises:
        ImageReadError: when the file is missing, unreadable or not a decodable image.
    """
    path = os.fspath(path)
    try:
        # np.fromfile + imdecode instead of cv2.imread: works with any path encoding and lets the
        # content (not the extension) decide the format.
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise ImageReadError(f"{path}: cannot read the file ({error.strerror or error})") from None
    return decode_image(data, source=path)


def to_rgb_uint8(image: np.ndarray, source: str = "<array>") -> np.ndarray:
    """Makes an in-memory image 3-channel uint8 (the rules of `read_image` for arrays).

    Args:
        image: `(h, w)`, `(h, w, 1)`, `(h, w, 3)` or `(h, w, 4)` array, uint8 (or another
            integer/float type with values in 0..255).
        source: a name for error messages.

    Returns:
        `(h, w, 3)` uint8 array (the input itself when it already is one).
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"{source}: expected an image of shape (h, w[, 1|3|4]), got {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)
