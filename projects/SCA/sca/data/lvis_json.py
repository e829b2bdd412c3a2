"""LVIS v1 as weak supervision (category names as captions) through the ``lvis`` package's API."""

from __future__ import annotations

import os

from lvis import LVIS

from .captions import category_caption, normalize_whitespace
from .coco_json import read_coco_style_json
from .errors import require_paths
from .region_records import RegionStats, image_file_name, image_record_to_dict


class _CheckedLVIS(LVIS):
    """The ``lvis`` API over a file checked by :func:`read_coco_style_json` first."""

    def _load_json(self, path: str) -> dict:
        return read_coco_style_json(path)


def lvis_file_name(image: dict, image_root: str, source: str) -> str:
    """LVIS images are COCO 2017 images named by their ``coco_url``: ``<root>/train2017/<file>``."""
    url = image.get("coco_url")
    if isinstance(url, str) and url.count("/") >= 2:
        split_folder, base = url.split("/")[-2:]
        return os.path.join(image_root, split_folder, base)
    return image_file_name(image, image_root, source)


def load_lvis_regions(
    json_file: str,
    image_root: str,
    name: str | None = None,
    layout: str = "",
    prepare: str = "see datasets/README.md",
) -> list[dict]:
    """LVIS annotations as SCA dataset dicts whose captions are category names.

    Args:
        image_root: the COCO folder holding ``train2017/`` and ``val2017/``.
    """
    source = name or json_file
    require_paths(
        source, [json_file, image_root], layout or f"  {json_file}\n  {image_root}/", prepare
    )
    api = _CheckedLVIS(json_file)
    category_captions = {cid: category_caption(c["name"]) for cid, c in api.cats.items()}
    stats = RegionStats()
    dicts = [
        image_record_to_dict(
            api.imgs[image_id],
            api.img_ann_map.get(image_id, []),
            lvis_file_name(api.imgs[image_id], image_root, json_file),
            category_captions,
            None,
            normalize_whitespace,
            stats,
            json_file,
        )
        for image_id in sorted(api.imgs)
    ]
    stats.log(source)
    return dicts
