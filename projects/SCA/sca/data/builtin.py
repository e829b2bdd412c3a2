"""Registration of SCA's built-in data sets. Nothing is read until a loader is called; each loader
resolves ``$DETECTRON2_DATASETS`` (default ``datasets``) when it runs."""

from __future__ import annotations

import os

from detectron2.data import DatasetCatalog, MetadataCatalog

from .captions import densecap_clean
from .coco_json import load_sca_coco_json
from .lvis_json import load_lvis_regions
from .paths import datasets_root
from .refcoco import load_refcoco
from .vg import load_vg_densecap

# name -> (folder under the root, refs pickle, split)
REFER_SPLITS = {
    **{
        f"refcoco_unc_{s}": ("refcoco", "refs(unc).p", s)
        for s in ("train", "val", "testA", "testB")
    },
    **{
        f"refcocop_unc_{s}": ("refcoco+", "refs(unc).p", s)
        for s in ("train", "val", "testA", "testB")
    },
    **{f"refcocog_umd_{s}": ("refcocog", "refs(umd).p", s) for s in ("train", "val", "test")},
    **{f"refcocog_google_{s}": ("refcocog", "refs(google).p", s) for s in ("train", "val")},
}

# name -> (annotation file, image root), both relative to the root; class names are the captions.
WEAK_SUPERVISION = {
    "coco_2017_train_sca": ("coco/annotations/instances_train2017.json", "coco/train2017"),
    "coco_2017_val_sca": ("coco/annotations/instances_val2017.json", "coco/val2017"),
    "objects365_v2_train_sca": (
        "objects365/annotations/zhiyuan_objv2_train.json",
        "objects365/train",
    ),
    "objects365_v2_val_sca": ("objects365/annotations/zhiyuan_objv2_val.json", "objects365/val"),
    "v3det_train_sca": ("v3det/annotations/v3det_2023_v1_train.json", "v3det"),
    "v3det_val_sca": ("v3det/annotations/v3det_2023_v1_val.json", "v3det"),
}
LVIS_SPLITS = {
    "lvis_v1_train_sca": ("lvis/lvis_v1_train.json", "coco"),
    "lvis_v1_val_sca": ("lvis/lvis_v1_val.json", "coco"),
}
VG_GRIT_SPLITS = {"vg_grit_train": "train", "vg_grit_test": "test"}
_README = "download it as datasets/README.md describes"


def _root(*parts: str) -> str:
    return os.path.join(datasets_root(), *parts)


def _register(name: str, loader, evaluator_type: str, **metadata) -> None:
    DatasetCatalog.register(name, loader)
    MetadataCatalog.get(name).set(evaluator_type=evaluator_type, **metadata)


def register_all_sca_datasets() -> None:
    """Register every built-in name (safe to call once per process; no file is touched)."""
    for split in ("train", "val", "test"):
        name = f"vg_densecap_{split}"
        _register(name, lambda s=split, n=name: load_vg_densecap(s, name=n), "dense_caption")
    for name, split in VG_GRIT_SPLITS.items():
        _register(
            name,
            lambda s=split, n=name: load_sca_coco_json(
                _root("vg", "annotations", f"{s}.json"),
                _root("vg", "images"),
                caption_field="caption",
                clean=densecap_clean,
                name=n,
                prepare="download GRiT's VG train.json / test.json (datasets/README.md)",
                layout=f"  $DETECTRON2_DATASETS/vg/annotations/{s}.json\n"
                "  $DETECTRON2_DATASETS/vg/images/<file_name>",
            ),
            "dense_caption",
        )
    for name, (folder, refs, split) in REFER_SPLITS.items():
        _register(
            name,
            lambda f=folder, r=refs, s=split, n=name: load_refcoco(
                _root(f, r), _root(f, "instances.json"), _root("coco", "train2014"), s, n
            ),
            "region_caption",
        )
    for name, (json_file, image_root) in WEAK_SUPERVISION.items():
        _register(
            name,
            lambda j=json_file, i=image_root, n=name: load_sca_coco_json(
                _root(j),
                _root(i),
                caption_field=None,
                name=n,
                prepare=_README,
                layout=f"  $DETECTRON2_DATASETS/{j}\n  $DETECTRON2_DATASETS/{i}/<file_name>",
            ),
            "region_caption",
        )
    for name, (json_file, image_root) in LVIS_SPLITS.items():
        _register(
            name,
            lambda j=json_file, i=image_root, n=name: load_lvis_regions(
                _root(j),
                _root(i),
                n,
                prepare=_README,
                layout=f"  $DETECTRON2_DATASETS/{j}\n  $DETECTRON2_DATASETS/{i}/{{train,val}}2017/",
            ),
            "region_caption",
        )
