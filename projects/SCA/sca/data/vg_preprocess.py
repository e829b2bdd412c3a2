"""DenseCap preprocessing of raw Visual Genome region descriptions into compact per-split arrays.

Input: VG v1.2 ``region_descriptions.json`` (a list of ``{"id", "regions": [{"region_id",
"phrase", "x", "y", "width", "height", ...}]}``), ``image_data.json`` (``{"image_id", "width",
"height", ...}``) and DenseCap's ``densecap_splits.json`` (``{"train": [ids], "val": [...],
"test": [...]}``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from .captions import densecap_tokens, is_valid_unicode
from .errors import AnnotationError
from .json_file import read_json

SPLITS = ("train", "val", "test")
# DenseCap's preprocess.py drops phrases longer than this many tokens (its --max_token_length).
DENSECAP_MAX_TOKENS = 25


@dataclass
class VGSummary:
    """What the preprocessing kept and dropped for one split."""

    images_in_split: int = 0
    images_missing: int = 0  # in the split file but absent from region_descriptions.json
    images_without_regions: int = 0  # dropped because none of their regions was kept
    regions_total: int = 0
    regions_kept: int = 0
    dropped_empty_phrase: int = 0
    dropped_degenerate_box: int = 0
    dropped_too_long: int = 0
    boxes_clipped: int = 0

    def describe(self, split: str) -> str:
        kept = self.images_in_split - self.images_missing - self.images_without_regions
        return (
            f"VG {split}: {kept} images kept of {self.images_in_split} in the split "
            f"({self.images_missing} absent from region_descriptions.json, "
            f"{self.images_without_regions} left without regions); "
            f"regions {self.regions_kept} kept of {self.regions_total}, dropped "
            f"{self.dropped_empty_phrase} empty phrases, {self.dropped_degenerate_box} degenerate "
            f"boxes, {self.dropped_too_long} phrases over the token limit; "
            f"{self.boxes_clipped} boxes clipped to the image"
        )


@dataclass
class VGSplit:
    """One split's regions as flat arrays: image ``i`` owns regions ``offsets[i]:offsets[i+1]``."""

    image_ids: np.ndarray  # (N,) int64
    heights: np.ndarray  # (N,) int32
    widths: np.ndarray  # (N,) int32
    offsets: np.ndarray  # (N+1,) int64
    region_ids: np.ndarray  # (M,) int64
    boxes: np.ndarray  # (M, 4) float32, XYXY absolute pixels, clipped to the image
    captions: list[str] = field(default_factory=list)  # (M,) cleaned phrases
    summary: VGSummary = field(default_factory=VGSummary)

    def summary_json(self) -> str:
        return json.dumps(asdict(self.summary))


def load_densecap_splits(path: str) -> dict[str, list[int]]:
    """Read ``densecap_splits.json`` into ``{"train": [...], "val": [...], "test": [...]}``."""
    data = read_json(path)
    if not isinstance(data, dict) or not set(SPLITS) <= set(data):
        raise AnnotationError(
            f"{path}: expected a JSON object with keys {list(SPLITS)} (lists of VG image ids), "
            f"got {type(data).__name__} with keys {sorted(data) if isinstance(data, dict) else []}"
        )
    return {split: [int(i) for i in data[split]] for split in SPLITS}


def _image_sizes(image_data: Iterable[Mapping]) -> dict[int, tuple[int, int]]:
    sizes = {}
    for n, record in enumerate(image_data):
        image_id = record.get("image_id", record.get("id")) if isinstance(record, Mapping) else None
        try:
            sizes[int(image_id)] = (int(record["height"]), int(record["width"]))
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise AnnotationError(
                f"image_data.json record #{n} (image id {image_id}): expected an object with "
                f"integer 'image_id', 'width' and 'height' fields ({e!r})"
            ) from e
    return sizes


def _region_fields(region: Mapping, image_id: int) -> tuple[int, str, float, float, float, float]:
    region_id = region.get("region_id", region.get("id")) if isinstance(region, Mapping) else None
    try:
        x, y = float(region["x"]), float(region["y"])
        w, h = float(region["width"]), float(region["height"])
        phrase = region["phrase"]
        if not isinstance(phrase, str):
            raise TypeError(f"'phrase' is {type(phrase).__name__}, not str")
        if not is_valid_unicode(phrase):
            raise ValueError("'phrase' is not valid Unicode (a lone surrogate)")
        return int(region_id), phrase, x, y, w, h
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise AnnotationError(
            f"region_descriptions.json: region id {region_id} of image {image_id} is malformed: "
            f"expected 'region_id', 'phrase' (str) and numeric 'x', 'y', 'width', 'height' ({e!r})"
        ) from e


def _image_record(record: object, n: int) -> tuple[int, list]:
    """The image id and region list of a region_descriptions.json record."""
    image_id = record.get("id", record.get("image_id")) if isinstance(record, Mapping) else None
    try:
        image_id = int(image_id)
    except (TypeError, ValueError, OverflowError):
        raise AnnotationError(
            f"region_descriptions.json: record #{n} needs an integer 'id' (the image id) and a "
            f"'regions' list, got {str(record)[:200]}"
        ) from None
    regions = record.get("regions", [])
    if not isinstance(regions, list):
        raise AnnotationError(
            f"region_descriptions.json: image {image_id} has 'regions' = {str(regions)[:100]}, "
            "expected a list"
        )
    return image_id, regions


def preprocess_vg(
    region_descriptions: Iterable[Mapping],
    image_data: Iterable[Mapping],
    splits: Mapping[str, Iterable[int]],
    max_tokens: int = DENSECAP_MAX_TOKENS,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict[str, VGSplit]:
    """Apply DenseCap's preprocessing and return one :class:`VGSplit` per requested split.

    A phrase is cleaned with :func:`~sca.data.captions.densecap_tokens`; it is dropped when nothing
    is left or it has more than ``max_tokens`` tokens (``max_tokens <= 0``: no limit). Boxes
    ``[x, y, x + width, y + height]`` are clipped to the image and dropped when empty afterwards.
    Images with no kept region are dropped. Region and image order follow the region file.

    Args:
        progress: wraps the iteration over images, e.g. ``tqdm.tqdm`` for a progress bar.
    """
    split_of: dict[int, str] = {}
    for split, ids in splits.items():
        for image_id in ids:
            split_of[int(image_id)] = split
    sizes = _image_sizes(image_data)
    builders = {split: _SplitBuilder() for split in splits}
    seen: set[int] = set()
    records = progress(region_descriptions) if progress else region_descriptions
    for n, record in enumerate(records):
        image_id, regions = _image_record(record, n)
        split = split_of.get(image_id)
        if split is None:
            continue
        if image_id not in sizes:
            raise AnnotationError(
                f"VG image id {image_id} has regions but no record in image_data.json"
            )
        seen.add(image_id)
        builders[split].add_image(image_id, sizes[image_id], regions, max_tokens)
    out = {}
    for split, ids in splits.items():
        builder = builders[split]
        ids = {int(i) for i in ids}
        builder.summary.images_in_split = len(ids)
        builder.summary.images_missing = len(ids - seen)
        out[split] = builder.build()
    return out


class _SplitBuilder:
    def __init__(self) -> None:
        self.summary = VGSummary()
        self.image_ids: list[int] = []
        self.sizes: list[tuple[int, int]] = []
        self.offsets = [0]
        self.region_ids: list[int] = []
        self.boxes: list[tuple[float, float, float, float]] = []
        self.captions: list[str] = []

    def add_image(
        self, image_id: int, size: tuple[int, int], regions: Iterable[Mapping], max_tokens: int
    ) -> None:
        height, width = size
        s = self.summary
        kept = 0
        for region in regions:
            region_id, phrase, x, y, w, h = _region_fields(region, image_id)
            s.regions_total += 1
            tokens = densecap_tokens(phrase)
            if not tokens:
                s.dropped_empty_phrase += 1
                continue
            if 0 < max_tokens < len(tokens):
                s.dropped_too_long += 1
                continue
            if not all(math.isfinite(v) for v in (x, y, w, h)):
                s.dropped_degenerate_box += 1
                continue
            x1, y1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
            x2, y2 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
            if x2 <= x1 or y2 <= y1:
                s.dropped_degenerate_box += 1
                continue
            if (x1, y1, x2, y2) != (x, y, x + w, y + h):
                s.boxes_clipped += 1
            self.region_ids.append(region_id)
            self.boxes.append((x1, y1, x2, y2))
            self.captions.append(" ".join(tokens))
            kept += 1
        s.regions_kept += kept
        if kept == 0:
            s.images_without_regions += 1
            return
        self.image_ids.append(image_id)
        self.sizes.append(size)
        self.offsets.append(len(self.region_ids))

    def build(self) -> VGSplit:
        sizes = np.asarray(self.sizes, dtype=np.int32).reshape(-1, 2)
        return VGSplit(
            image_ids=np.asarray(self.image_ids, dtype=np.int64),
            heights=sizes[:, 0].copy(),
            widths=sizes[:, 1].copy(),
            offsets=np.asarray(self.offsets, dtype=np.int64),
            region_ids=np.asarray(self.region_ids, dtype=np.int64),
            boxes=np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4),
            captions=self.captions,
            summary=self.summary,
        )
