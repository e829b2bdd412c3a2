"""Ground truth of a registered SCA data set, and predictions gathered across processes."""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
from collections.abc import Mapping

from detectron2.data import DatasetCatalog
from detectron2.structures import BoxMode
from detectron2.utils import comm

logger = logging.getLogger(__name__)


def gather_on_main(items: list, distributed: bool) -> list | None:
    """All processes' ``items`` concatenated on the main process; ``None`` on the others."""
    if not distributed:
        return items
    comm.synchronize()
    parts = comm.gather(items, dst=0)
    if not comm.is_main_process():
        return None
    return list(itertools.chain.from_iterable(parts))


def dataset_index(dataset_name: str) -> dict:
    """``{image_id: dataset dict}`` of a registered data set (image ids must be unique)."""
    index = {}
    for record in DatasetCatalog.get(dataset_name):
        image_id = record["image_id"]
        if image_id in index:
            raise ValueError(
                f"data set {dataset_name!r} has two dataset dicts with image_id {image_id!r}; the "
                "caption evaluators match outputs to ground truth by image_id"
            )
        index[image_id] = record
    return index


def annotation_box(annotation: Mapping) -> list[float]:
    """The annotation's box as ``[x1, y1, x2, y2]`` (BoxMode.XYXY_ABS)."""
    mode = annotation.get("bbox_mode", BoxMode.XYXY_ABS)
    box = BoxMode.convert(list(annotation["bbox"]), mode, BoxMode.XYXY_ABS)
    return [float(v) for v in box]


def annotation_references(annotation: Mapping, image_id: object) -> list[str]:
    """All reference captions of an annotation (its ``captions`` list)."""
    captions = annotation.get("captions")
    if isinstance(captions, str):
        captions = [captions]
    if not isinstance(captions, (list, tuple)) or not captions:
        raise ValueError(
            f"image {image_id!r}, annotation {annotation.get('id')!r}: needs a non-empty "
            f"'captions' list, got {captions!r}"
        )
    return list(captions)


def check_image_ids(predicted: list, index: Mapping, dataset_name: str) -> None:
    """Raise for predictions of unknown or repeated images; warn when images were not evaluated."""
    seen = set()
    for image_id in predicted:
        if image_id not in index:
            raise ValueError(
                f"a prediction has image_id {image_id!r}, absent from data set {dataset_name!r}"
            )
        if image_id in seen:
            raise ValueError(
                f"image_id {image_id!r} was predicted twice (data set {dataset_name!r})"
            )
        seen.add(image_id)
    if len(seen) < len(index):
        logger.warning(
            "%s: %d of %d images were evaluated (the others have no prediction)",
            dataset_name,
            len(seen),
            len(index),
        )


def as_percent(metrics: Mapping, keys: tuple[str, ...]) -> dict[str, float]:
    """The finite metrics among ``keys`` scaled by 100, the scale of Detectron2's tables (NaN, a
    metric with nothing to average, is left out)."""
    out = {}
    for key in keys:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = 100.0 * float(value)
    return out


def write_json(output_dir: str | None, file_name: str, payload: object) -> str | None:
    """Write ``payload`` as JSON into ``output_dir`` (if given); returns the path."""
    if not output_dir:
        return None
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, file_name)

    def default(value: object) -> object:
        if hasattr(value, "item"):
            return value.item()
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")

    with open(path, "w") as f:
        json.dump(payload, f, default=default, allow_nan=True)
    logger.info("wrote %s", path)
    return path
