"""Conversion of COCO-style image and annotation records into SCA dataset dicts."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass

from detectron2.structures import BoxMode

from .captions import is_valid_unicode
from .errors import AnnotationError

logger = logging.getLogger(__name__)


@dataclass
class RegionStats:
    """Counts of what a COCO-style conversion kept and dropped."""

    images: int = 0
    regions_total: int = 0
    regions_kept: int = 0
    dropped_crowd: int = 0
    dropped_degenerate_box: int = 0
    dropped_empty_caption: int = 0

    def log(self, source: str) -> None:
        logger.info(
            "%s: %d images, regions %d kept of %d (dropped %d crowd, %d degenerate boxes, "
            "%d empty captions)",
            source,
            self.images,
            self.regions_kept,
            self.regions_total,
            self.dropped_crowd,
            self.dropped_degenerate_box,
            self.dropped_empty_caption,
        )


def image_file_name(image: Mapping, image_root: str, source: str) -> str:
    """``image_root`` joined with the image record's ``file_name``."""
    if not isinstance(image.get("file_name"), str):
        raise AnnotationError(f"{source}: image id {image.get('id')} has no 'file_name' string")
    return os.path.join(image_root, image["file_name"])


def _xywh_box(ann: Mapping, source: str) -> list[float]:
    bbox = ann.get("bbox")
    try:
        values = [] if isinstance(bbox, (str, bytes, Mapping)) else [float(v) for v in bbox]
    except (TypeError, ValueError, OverflowError):
        values = []
    if len(values) != 4:
        raise AnnotationError(
            f"{source}: annotation id {ann.get('id')} has bbox {str(bbox)[:100]}, expected 4 "
            "numbers [x, y, width, height]"
        )
    return values


def _captions(
    ann: Mapping,
    caption_field: str | None,
    category_captions: Mapping[int, str],
    clean: Callable[[str], str],
    source: str,
) -> list[str]:
    if caption_field and caption_field in ann:
        value = ann[caption_field]
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not all(
            isinstance(t, str) and is_valid_unicode(t) for t in texts
        ):
            raise AnnotationError(
                f"{source}: annotation id {ann.get('id')} has {caption_field!r} = "
                f"{str(value)[:200]}, expected a string or a list of strings (valid Unicode)"
            )
        return [c for c in (clean(t) for t in texts) if c]
    category_id = ann.get("category_id")
    if not isinstance(category_id, Hashable) or category_id not in category_captions:
        wanted = f"a {caption_field!r} field or " if caption_field else ""
        raise AnnotationError(
            f"{source}: annotation id {ann.get('id')} has {wanted}no category_id of the "
            f"'categories' list (category_id={category_id!r}); its caption cannot be made"
        )
    return [category_captions[category_id]]


def image_record_to_dict(
    image: Mapping,
    annotations: Iterable[Mapping],
    file_name: str,
    category_captions: Mapping[int, str],
    caption_field: str | None,
    clean: Callable[[str], str],
    stats: RegionStats,
    source: str,
) -> dict:
    """One dataset dict from a COCO-style image record and its annotations.

    Boxes (``[x, y, w, h]``) become clipped ``XYXY_ABS`` boxes; crowd annotations, boxes empty after
    clipping and annotations whose captions are all empty are dropped and counted in ``stats``.
    Captions come from ``caption_field`` (a string or list of strings) when the annotation has it,
    else from its category's name.
    """
    try:
        height, width = int(image["height"]), int(image["width"])
        if height <= 0 or width <= 0:
            raise ValueError(f"height {height}, width {width}")
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise AnnotationError(
            f"{source}: image id {image.get('id')} needs positive integer 'height' and 'width' "
            f"({e!r})"
        ) from e
    regions = []
    for ann in annotations:
        stats.regions_total += 1
        if ann.get("iscrowd", 0):
            stats.dropped_crowd += 1
            continue
        x, y, w, h = _xywh_box(ann, source)
        x1, y1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
        x2, y2 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
            stats.dropped_degenerate_box += 1
            continue
        captions = _captions(ann, caption_field, category_captions, clean, source)
        if not captions:
            stats.dropped_empty_caption += 1
            continue
        regions.append(
            {
                "bbox": [x1, y1, x2, y2],
                "bbox_mode": BoxMode.XYXY_ABS,
                "captions": captions,
                "id": ann.get("id"),
            }
        )
    stats.images += 1
    stats.regions_kept += len(regions)
    return {
        "file_name": os.path.abspath(file_name),
        "image_id": image["id"],
        "height": height,
        "width": width,
        "annotations": regions,
    }
