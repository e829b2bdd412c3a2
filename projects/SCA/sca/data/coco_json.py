"""COCO-style JSON region data (COCO, Objects365, V3Det, GRiT VG, custom) via pycocotools."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable

from detectron2.data import DatasetCatalog, MetadataCatalog
from pycocotools.coco import COCO

from .captions import category_caption, normalize_whitespace
from .errors import AnnotationError, require_paths
from .region_records import RegionStats, image_file_name, image_record_to_dict

COCO_JSON_LAYOUT = """\
  <json_file>: COCO-style {"images": [{"id", "file_name", "height", "width"}],
                "annotations": [{"id", "image_id", "bbox": [x, y, w, h], "caption" and/or
                "category_id"}], "categories": [{"id", "name"}]}
  <image_root>/<file_name of each image>"""


def read_coco_json(json_file: str) -> COCO:
    """A pycocotools ``COCO`` index of ``json_file``; annotations may lack ``category_id``."""
    with open(json_file) as f:
        data = json.load(f)
    if not isinstance(data, dict) or not {"images", "annotations"} <= set(data):
        raise AnnotationError(
            f"{json_file}: expected a COCO-style object with 'images' and 'annotations' lists"
        )
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "id" not in ann or "image_id" not in ann:
            ann_id = ann.get("id") if isinstance(ann, dict) else None
            raise AnnotationError(
                f"{json_file}: annotation #{i} (id {ann_id}) needs 'id' and 'image_id' fields"
            )
        # pycocotools indexes every annotation by category; caption-only data has none.
        ann.setdefault("category_id", None)
    api = COCO()
    api.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        api.createIndex()
    return api


def load_sca_coco_json(
    json_file: str,
    image_root: str,
    caption_field: str | None = "caption",
    clean: Callable[[str], str] = normalize_whitespace,
    name: str | None = None,
    prepare: str = "see datasets/README.md",
    layout: str = COCO_JSON_LAYOUT,
) -> list[dict]:
    """Load a COCO-style JSON as SCA dataset dicts.

    Args:
        json_file: the annotation file.
        image_root: the folder that each image's ``file_name`` is relative to.
        caption_field: annotation field holding the caption(s) (a string or a list of strings);
            annotations without it, or every annotation when None, use their category's name.
        clean: applied to every caption from ``caption_field`` (default: whitespace only).
        name: the registered name, used in messages.
        prepare: how to obtain the files, shown when they are missing.
        layout: the expected files, shown when they are missing.
    """
    source = name or json_file
    require_paths(source, [json_file, image_root], layout, prepare)
    api = read_coco_json(json_file)
    category_captions = {
        c["id"]: category_caption(c["name"]) for c in api.dataset.get("categories", [])
    }
    stats = RegionStats()
    dicts = []
    for image_id in sorted(api.imgs):
        image = api.imgs[image_id]
        dicts.append(
            image_record_to_dict(
                image,
                api.imgToAnns.get(image_id, []),
                image_file_name(image, image_root, json_file),
                category_captions,
                caption_field,
                clean,
                stats,
                json_file,
            )
        )
    stats.log(source)
    return dicts


def register_sca_coco_json(
    name: str,
    json_file: str,
    image_root: str,
    caption_field: str | None = "caption",
    evaluator_type: str = "dense_caption",
    clean: Callable[[str], str] = normalize_whitespace,
    **metadata,
) -> None:
    """Register a COCO-style JSON of captioned regions under ``name`` (nothing is read yet).

    Each annotation's ``caption_field`` (a string, or a list of reference strings) is its caption;
    annotations without it use their category's name. ``evaluator_type`` is "dense_caption"
    (region-caption metrics and DenseCap mAP) or "region_caption" (caption metrics only).
    """
    if evaluator_type not in ("dense_caption", "region_caption"):
        raise ValueError(
            f"evaluator_type must be 'dense_caption' or 'region_caption', got {evaluator_type!r}"
        )
    DatasetCatalog.register(
        name,
        lambda: load_sca_coco_json(json_file, image_root, caption_field, clean, name),
    )
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type=evaluator_type, **metadata
    )
