"""Image reading with errors that name the file.

Decoding follows Detectron2's ``detection_utils.read_image`` (PIL, EXIF orientation, then
conversion to ``format``), except for 16-bit grayscale images (PIL modes ``I;16*`` and ``I``),
which PIL's conversion to RGB would clip at 255 (an almost white image): they are scaled to 8 bits
first. Floating-point images (mode ``F``) have no agreed range and are refused. CMYK, palette,
grayscale, 1-bit and alpha images are converted by PIL.
"""

from __future__ import annotations

import os

import numpy as np
from detectron2.data import detection_utils
from PIL import Image, UnidentifiedImageError

from .errors import ImageReadError

SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _to_eight_bits(image: Image.Image, file_name: str) -> Image.Image:
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    if image.mode == "F":
        raise ImageReadError(
            f"Image {file_name} is a floating-point image (PIL mode F), which has no agreed "
            "range; convert it to 8-bit RGB"
        )
    return image


def read_image(file_name: str, format: str = "RGB") -> np.ndarray:
    """Read an image as an HxWx3 uint8 array (EXIF orientation applied), RGB by default.

    Raises:
        ImageReadError: the file does not exist, is not an image, is truncated / corrupt, or is a
            floating-point image.
    """
    path = os.path.abspath(file_name)
    if not os.path.isfile(file_name):
        raise ImageReadError(f"Image file not found: {path}")
    try:
        with Image.open(file_name) as image:
            image = detection_utils._apply_exif_orientation(image)
            image = _to_eight_bits(image, path)
            image = detection_utils.convert_PIL_to_numpy(image, format)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        if isinstance(e, ImageReadError):
            raise
        raise ImageReadError(f"Cannot read image {path} (corrupt or not an image): {e}") from e
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageReadError(
            f"Image {path} decoded to shape {image.shape} {image.dtype}, "
            f"expected HxWx3 uint8 for format {format!r}"
        )
    return image
