"""Turning a user's image (a file, a PIL image or an array) into a model input."""

from __future__ import annotations

import os

import numpy as np
import torch
from detectron2.data import detection_utils
from detectron2.data import transforms as T
from PIL import Image

from .errors import ImageReadError
from .image_io import read_image
from .transforms import ResizeLongestSide

ImageLike = str | os.PathLike | Image.Image | np.ndarray


def load_image(image: ImageLike, format: str = "RGB") -> np.ndarray:
    """An HxWx3 uint8 array in ``format`` ("RGB" or "BGR", Detectron2's ``INPUT.FORMAT``).

    ``image`` is a file path (any format Pillow reads, EXIF orientation applied), a PIL image
    (EXIF orientation applied, converted to ``format``) or an HxWx3 uint8 array in BGR order, as
    Detectron2's ``DefaultPredictor`` takes it (what ``cv2.imread`` returns).
    """
    if isinstance(image, str | os.PathLike):
        return read_image(os.fspath(image), format=format)
    if isinstance(image, Image.Image):
        image = detection_utils._apply_exif_orientation(image)
        return np.ascontiguousarray(detection_utils.convert_PIL_to_numpy(image, format))
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ImageReadError(
                f"image array has shape {image.shape} and dtype {image.dtype}: expected HxWx3 "
                "uint8 in BGR order"
            )
        return np.ascontiguousarray(image[:, :, ::-1] if format == "RGB" else image)
    raise TypeError(f"image is a {type(image).__name__}: expected a path, PIL image or array")


def model_input(image: np.ndarray, image_size: int) -> tuple[dict, T.Transform]:
    """The model's input dict for an HxWx3 image already in the model's format (its longest side
    resized to ``image_size`` as at test time; ``height``/``width`` the original size), and the
    transform that maps original coordinates into the input frame."""
    transform = ResizeLongestSide(image_size).get_transform(image)
    resized = transform.apply_image(image)
    tensor = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))
    return {"image": tensor, "height": image.shape[0], "width": image.shape[1]}, transform
