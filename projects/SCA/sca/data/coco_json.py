"""COCO-style JSON region data (COCO, Objects365, V3Det, GRiT VG, custom) via pycocotools."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Hashable

from detectron2.data import DatasetCatalog, MetadataCatalog
from pycocotools.coco import COCO

from .captions import category_caption, normalize_whitespace
from .errors import AnnotationError, require_paths
from .json_file import read_json
from .region_records import RegionStats, image_file_name, image_record_to_dict

COCO_JSON_LAYOUT = """\
  <json_file>: COCO-style {"images": [{"id", "file_name", "height", "width"}],
                "annotations": [{"id", "image_id", "bbox": [x, y, w, h], "caption" and/or
                "category_id"}], "categories": [{"id", "name"}]}
  <image_root>/<file_name of each image>"""


def read_coco_style_json(json_file: str) -> dict:
    """The content of a COCO-style JSON (COCO, LVIS, ...), checked so that indexing it cannot fail:
    an ``images`` list of objects with unique ``id``, an ``annotations`` list of objects with
    ``id`` and an ``image_id`` among the images, ``categories`` (if any) with ``id`` and ``name``.
    Annotations without ``category_id`` get ``None`` (caption-only data)."""
    data = read_json(json_file)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise AnnotationError(
            f"{json_file}: expected a COCO-style object with 'images' and 'annotations' lists"
        )
    image_ids = set()
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not isinstance(image.get("id", []), Hashable):
            raise AnnotationError(
                f"{json_file}: image record #{i} needs an 'id' field: {str(image)[:200]}"
            )
        if image["id"] in image_ids:
            raise AnnotationError(f"{json_file}: image id {image['id']!r} appears twice")
        image_ids.add(image["id"])
    for i, ann in enumerate(data["annotations"]):
        if (
            not isinstance(ann, dict)
            or "id" not in ann
            or not isinstance(ann["id"], Hashable)
            or "image_id" not in ann
        ):
            ann_id = ann.get("id") if isinstance(ann, dict) else None
            raise AnnotationError(
                f"{json_file}: annotation #{i} (id {ann_id}) needs 'id' and 'image_id' fields"
            )
        if not isinstance(ann["image_id"], Hashable) or ann["image_id"] not in image_ids:
            raise AnnotationError(
                f"{json_file}: annotation id {ann['id']} has image_id {ann['image_id']!r}, "
                "which is not in 'images'"
            )
        # pycocotools indexes every annotation by category; caption-only data has none.
        ann.setdefault("category_id", None)
        if not isinstance(ann["category_id"], Hashable):
            raise AnnotationError(
                f"{json_file}: annotation id {ann['id']} has category_id {ann['category_id']!r}"
            )
    categories = data.setdefault("categories", [])
    if not isinstance(categories, list) or not all(
        isinstance(c, dict) and isinstance(c.get("id"), Hashable) and isinstance(c.get("name"), str)
        for c in categories
    ):
        raise AnnotationError(
            f"{json_file}: 'categories' must be a list of objects with 'id' and a 'name' string"
        )
    return data


def read_coco_json(json_file: str) -> COCO:
    """A pycocotools ``COCO`` index of ``json_file`` (checked by :func:`read_coco_style_json`)."""
    data = read_coco_style_json(json_file)
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
        c["id"]: category_caption(c["name"]) for c in api.dataset["categories"]
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
