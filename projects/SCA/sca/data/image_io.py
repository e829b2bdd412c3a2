"""Image reading with errors that name the file."""

from __future__ import annotations

import os

import numpy as np
from detectron2.data import detection_utils
from PIL import UnidentifiedImageError

from .errors import ImageReadError


def read_image(file_name: str, format: str = "RGB") -> np.ndarray:
    """Read an image as an HxWx3 uint8 array (EXIF orientation applied), RGB by default.

    Raises:
        ImageReadError: the file does not exist, is not an image, or is truncated / corrupt.
    """
    if not os.path.isfile(file_name):
        raise ImageReadError(f"Image file not found: {os.path.abspath(file_name)}")
    try:
        image = detection_utils.read_image(file_name, format=format)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(
            f"Cannot read image {os.path.abspath(file_name)} (corrupt or not an image): {e}"
        ) from e
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageReadError(
            f"Image {os.path.abspath(file_name)} decoded to shape {image.shape} {image.dtype}, "
            f"expected HxWx3 uint8 for format {format!r}"
        )
    return image
