"""Visual Genome dense captioning (DenseCap splits): loading, caching and dataset dicts."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import Callable, Iterable

from detectron2.structures import BoxMode

from .errors import AnnotationError, require_paths
from .json_file import read_json
from .paths import datasets_root
from .vg_cache import load_vg_split, save_vg_split
from .vg_preprocess import DENSECAP_MAX_TOKENS, SPLITS, VGSplit, load_densecap_splits, preprocess_vg

logger = logging.getLogger(__name__)

VG_LAYOUT = """\
  $DETECTRON2_DATASETS/vg/
    images/<image_id>.jpg          (VG_100K/ and VG_100K_2/ of VG v1.2 merged into one folder)
    region_descriptions.json       (VG v1.2)
    image_data.json                (VG v1.2)
    densecap_splits.json           (jcjohnson/densecap info/densecap_splits.json)
    sca_cache/densecap_<split>.npz (written by datasets/prepare_vg.py)"""
VG_PREPARE = (
    "download the files listed in datasets/README.md (Visual Genome), then run "
    "`python datasets/prepare_vg.py` once to write the cache"
)


def default_vg_root() -> str:
    return os.path.join(datasets_root(), "vg")


def vg_cache_path(vg_root: str, split: str) -> str:
    return os.path.join(vg_root, "sca_cache", f"densecap_{split}.npz")


def _raw_paths(vg_root: str) -> list[str]:
    return [
        os.path.join(vg_root, name)
        for name in ("region_descriptions.json", "image_data.json", "densecap_splits.json")
    ]


def preprocess_vg_root(
    vg_root: str,
    splits: Iterable[str] = SPLITS,
    max_tokens: int = DENSECAP_MAX_TOKENS,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict[str, VGSplit]:
    """Read the raw VG files under ``vg_root`` and preprocess the requested DenseCap splits."""
    require_paths("Visual Genome (raw annotations)", _raw_paths(vg_root), VG_LAYOUT, VG_PREPARE)
    regions_path, image_data_path, splits_path = _raw_paths(vg_root)
    split_ids = load_densecap_splits(splits_path)
    logger.info("Reading %s (VG's largest file, this takes a while) ...", regions_path)
    region_descriptions = read_json(regions_path)
    image_data = read_json(image_data_path)
    for path, data in ((regions_path, region_descriptions), (image_data_path, image_data)):
        if not isinstance(data, list):
            raise AnnotationError(f"{path}: expected a JSON list, got {type(data).__name__}")
    wanted = {s: split_ids[s] for s in splits}
    return preprocess_vg(region_descriptions, image_data, wanted, max_tokens, progress)


def prepare_vg_cache(
    vg_root: str,
    max_tokens: int = DENSECAP_MAX_TOKENS,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict[str, VGSplit]:
    """Preprocess all DenseCap splits of ``vg_root`` once and write their caches."""
    out = preprocess_vg_root(vg_root, SPLITS, max_tokens, progress)
    for split, data in out.items():
        save_vg_split(vg_cache_path(vg_root, split), data, max_tokens)
        logger.info(data.summary.describe(split))
    return out


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: allocating millions of small containers otherwise
    triggers it over and over (VG train builds 4x slower)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def vg_split_to_dicts(data: VGSplit, image_root: str) -> list[dict]:
    """Turn a :class:`VGSplit` into Detectron2 dataset dicts (one caption per region)."""
    with _gc_paused():
        return _split_to_dicts(data, os.path.abspath(image_root))


def _split_to_dicts(data: VGSplit, image_root: str) -> list[dict]:
    boxes = data.boxes.tolist()
    region_ids = data.region_ids.tolist()
    offsets = data.offsets.tolist()
    dicts = []
    for i, (image_id, height, width) in enumerate(
        zip(data.image_ids.tolist(), data.heights.tolist(), data.widths.tolist())
    ):
        annotations = [
            {
                "bbox": boxes[j],
                "bbox_mode": BoxMode.XYXY_ABS,
                "captions": [data.captions[j]],
                "id": region_ids[j],
            }
            for j in range(offsets[i], offsets[i + 1])
        ]
        dicts.append(
            {
                "file_name": os.path.join(image_root, f"{image_id}.jpg"),
                "image_id": image_id,
                "height": height,
                "width": width,
                "annotations": annotations,
            }
        )
    return dicts


def load_vg_densecap(split: str, vg_root: str | None = None, name: str | None = None) -> list[dict]:
    """Dataset dicts of a DenseCap split of VG, from the cache when present, else from raw files.

    Args:
        split: "train", "val" or "test".
        vg_root: the ``vg`` folder (default: ``$DETECTRON2_DATASETS/vg``).
        name: the registered name, used in error messages.
    """
    if split not in SPLITS:
        raise ValueError(f"VG split must be one of {SPLITS}, got {split!r}")
    vg_root = vg_root or default_vg_root()
    name = name or f"vg_densecap_{split}"
    image_root = os.path.join(vg_root, "images")
    cache = vg_cache_path(vg_root, split)
    if os.path.isfile(cache):
        require_paths(name, [image_root], VG_LAYOUT, VG_PREPARE)
        data = load_vg_split(cache)
    else:
        require_paths(name, _raw_paths(vg_root) + [image_root], VG_LAYOUT, VG_PREPARE)
        logger.warning(
            "No cache %s: preprocessing the raw VG files now (slow). Run "
            "`python datasets/prepare_vg.py` once to make later loads take seconds.",
            cache,
        )
        data = preprocess_vg_root(vg_root, [split])[split]
    logger.info(data.summary.describe(split))
    return vg_split_to_dicts(data, image_root)
