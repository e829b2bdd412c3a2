"""A request's image and prompts, checked: every refusal is a :class:`ServiceError` naming the
field at fault, raised before the request reaches the model."""

from __future__ import annotations

import hashlib
import io
import math
import time
from dataclasses import dataclass

import numpy as np
from detectron2.data import detection_utils
from PIL import Image

from ...data.image_io import _to_eight_bits
from .errors import ServiceError
from .limits import ServiceLimits


@dataclass(eq=False)
class DecodedImage:
    """An image as the model reads it: HxWx3 uint8 in ``INPUT.FORMAT``, keyed by the SHA-256 of
    its encoded bytes (the key of the embedding cache)."""

    key: str
    array: np.ndarray
    decode_s: float = 0.0

    @property
    def height(self) -> int:
        return int(self.array.shape[0])

    @property
    def width(self) -> int:
        return int(self.array.shape[1])


@dataclass(eq=False)
class Prompts:
    """N prompts in the image's pixel frame: box i and/or point set i make prompt i (as
    :meth:`SCAPredictor.predict` reads them)."""

    boxes: np.ndarray | None = None  # (N, 4) XYXY
    points: np.ndarray | None = None  # (N, P, 2) XY
    point_labels: np.ndarray | None = None  # (N, P) 1 foreground, 0 background

    def __len__(self) -> int:
        return len(self.boxes) if self.boxes is not None else len(self.points)


def decode_image(data: bytes, format: str, limits: ServiceLimits, field: str = "image"):
    """The image in ``data`` (any format Pillow reads; EXIF orientation applied, 16-bit images
    scaled to 8 bits, as :func:`sca.data.read_image` reads files)."""
    start = time.perf_counter()
    if not data:
        raise ServiceError(422, field, "is empty: expected the bytes of an image file")
    if len(data) > limits.max_upload_bytes:
        raise ServiceError(
            413,
            field,
            f"has {len(data):,} bytes, more than the limit of {limits.max_upload_bytes:,}",
        )
    key = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as image:
            w, h = image.size
            if w * h > limits.max_pixels:
                raise ServiceError(
                    413,
                    field,
                    f"has {w}x{h} = {w * h:,} pixels, more than the limit of {limits.max_pixels:,}",
                )
            if w < 1 or h < 1:
                raise ServiceError(422, field, f"has no pixels ({w}x{h})")
            image.load()  # a truncated file fails here, not half-decoded later
            image = detection_utils._apply_exif_orientation(image)
            image = _to_eight_bits(image, field)
            array = detection_utils.convert_PIL_to_numpy(image, format)
    except ServiceError:
        raise
    except Image.DecompressionBombError as e:
        raise ServiceError(413, field, f"has too many pixels: {e}") from e
    except Image.UnidentifiedImageError as e:
        raise ServiceError(422, field, "is not an image that Pillow can read") from e
    except Exception as e:  # truncated or corrupt data: whatever the decoder raises
        raise ServiceError(
            422, field, f"is a truncated or corrupt image ({type(e).__name__}: {e})"
        ) from e
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ServiceError(
            422, field, f"decoded to shape {array.shape} {array.dtype}: expected HxWx3 uint8"
        )
    return DecodedImage(key, np.ascontiguousarray(array), time.perf_counter() - start)


def _numbers(value, field: str) -> np.ndarray:
    """A nested list of JSON numbers (no booleans, no strings) as a float64 array."""

    def check(v, path):
        if isinstance(v, list | tuple):
            for i, item in enumerate(v):
                check(item, f"{path}[{i}]")
        elif isinstance(v, bool) or not isinstance(v, int | float):
            raise ServiceError(422, path, f"is {v!r}: expected a number")
        elif not math.isfinite(v):
            raise ServiceError(422, path, f"is {v!r}: expected a finite number")

    check(value, field)
    try:
        return np.asarray(value, dtype=np.float64)
    except ValueError as e:  # ragged lists
        raise ServiceError(422, field, "has rows of different lengths") from e


def parse_prompts(
    boxes, points, point_labels, image: DecodedImage, limits: ServiceLimits
) -> Prompts:
    """The prompts of one request, checked against the image and the limits.

    ``boxes``: ``[[x1, y1, x2, y2], ...]`` (or one box ``[x1, y1, x2, y2]``); ``points``:
    ``[[x, y], ...]`` (one point per prompt) or ``[[[x, y], ...], ...]`` (P points per prompt);
    ``point_labels``: 1 (foreground) / 0 (background) per point, all 1 when absent."""
    if boxes is None and points is None:
        raise ServiceError(422, "boxes", "no prompts: give boxes and/or points")
    if point_labels is not None and points is None:
        raise ServiceError(422, "point_labels", "given without points")
    w, h = image.width, image.height
    out = Prompts()
    if boxes is not None:
        array = _numbers(boxes, "boxes")
        if array.ndim == 1 and array.shape[0] == 4:
            array = array[None]
        if array.ndim != 2 or array.shape[1] != 4 or len(array) == 0:
            raise ServiceError(
                422, "boxes", f"has shape {list(array.shape)}: expected [[x1, y1, x2, y2], ...]"
            )
        _check_count(len(array), "boxes", limits)
        for i, (x1, y1, x2, y2) in enumerate(array.tolist()):
            if x2 <= x1 or y2 <= y1:
                raise ServiceError(
                    422,
                    f"boxes[{i}]",
                    f"{[x1, y1, x2, y2]} is inverted or empty: need x1 < x2, y1 < y2",
                )
            if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
                raise ServiceError(
                    422, f"boxes[{i}]", f"{[x1, y1, x2, y2]} lies outside the {w}x{h} image"
                )
        out.boxes = array
    if points is not None:
        array = _numbers(points, "points")
        if array.ndim == 2:
            array = array[:, None, :]
        if array.ndim != 3 or array.shape[2] != 2 or array.shape[0] == 0 or array.shape[1] == 0:
            raise ServiceError(
                422,
                "points",
                f"has shape {list(array.shape)}: expected [[x, y], ...] or [[[x, y], ...], ...]",
            )
        _check_count(len(array), "points", limits)
        if array.shape[1] > limits.max_points_per_prompt:
            raise ServiceError(
                413,
                "points",
                f"has {array.shape[1]} points per prompt, more than the limit of "
                f"{limits.max_points_per_prompt}",
            )
        outside = (
            (array[..., 0] < 0) | (array[..., 0] > w) | (array[..., 1] < 0) | (array[..., 1] > h)
        )
        if outside.any():
            i = int(np.argwhere(outside)[0][0])
            raise ServiceError(422, f"points[{i}]", f"lies outside the {w}x{h} image")
        if out.boxes is not None and len(out.boxes) != len(array):
            raise ServiceError(
                422,
                "points",
                f"{len(out.boxes)} boxes but {len(array)} point sets: with both, "
                "prompt i is box i and point set i",
            )
        labels = np.ones(array.shape[:2], dtype=np.int64)
        if point_labels is not None:
            given = _numbers(point_labels, "point_labels")
            if given.size != labels.size:
                raise ServiceError(
                    422, "point_labels", f"has {given.size} labels for {labels.size} points"
                )
            if not np.isin(given, (0, 1)).all():
                raise ServiceError(422, "point_labels", "expected 1 (foreground) or 0 (background)")
            labels = given.reshape(labels.shape).astype(np.int64)
        out.points, out.point_labels = array, labels
    return out


def _check_count(n: int, field: str, limits: ServiceLimits) -> None:
    if n > limits.max_prompts:
        raise ServiceError(
            413, field, f"has {n} prompts, more than the limit of {limits.max_prompts} per request"
        )
