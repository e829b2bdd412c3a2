"""Data sets declared in the config (``DATASETS.COCO_JSON``), so that your own COCO-style regions
need no Python: each entry is registered like a built-in name before anything loads it."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog

from .coco_json import register_sca_coco_json
from .errors import DatasetConfigError

logger = logging.getLogger(__name__)

EVALUATOR_TYPES = ("dense_caption", "region_caption")
KEY = "DATASETS.COCO_JSON"
EXPECTED = (
    "[name, json_file, image_root] or [name, json_file, image_root, evaluator_type] "
    f"(non-empty strings; evaluator_type one of {EVALUATOR_TYPES})"
)


def _parse_entry(index: int, entry: object) -> tuple[str, str, str, str]:
    """(name, absolute json_file, absolute image_root, evaluator_type) of one config entry."""
    if (
        not isinstance(entry, Sequence)
        or isinstance(entry, str)
        or len(entry) not in (3, 4)
        or not all(isinstance(v, str) and v for v in entry)
    ):
        raise DatasetConfigError(f"{KEY}[{index}] is {entry!r}; expected {EXPECTED}")
    name, json_file, image_root, *rest = entry
    evaluator_type = rest[0] if rest else "dense_caption"
    if evaluator_type not in EVALUATOR_TYPES:
        raise DatasetConfigError(
            f"{KEY}[{index}] ({name!r}) has evaluator_type {evaluator_type!r}; expected {EXPECTED}"
        )
    return name, os.path.abspath(json_file), os.path.abspath(image_root), evaluator_type


def _registered_as(name: str) -> tuple[str | None, str | None, str | None]:
    """(json_file, image_root, evaluator_type) of an existing registration (None where unset)."""
    meta = MetadataCatalog.get(name)
    return (
        meta.get("json_file", None),
        meta.get("image_root", None),
        meta.get("evaluator_type", None),
    )


def register_config_datasets(cfg: CfgNode) -> list[str]:
    """Register every ``DATASETS.COCO_JSON`` entry with :func:`register_sca_coco_json`.

    Every entry is checked before any is registered, so an error leaves the catalog unchanged.
    Nothing is read here: missing files raise :class:`DatasetNotFoundError` when the data set is
    loaded. Safe to call again in the same process (e.g. by each tool that sets up this config):
    an entry already registered with the same files and evaluator type is skipped, while a name
    registered otherwise (a built-in one, or another entry with other files) is an error.

    Returns:
        the entries' names, in config order.
    """
    entries = [_parse_entry(i, entry) for i, entry in enumerate(cfg.DATASETS.COCO_JSON)]
    planned: dict[str, tuple[str | None, str | None, str | None]] = {}
    for index, (name, *wanted) in enumerate(entries):
        if name in planned:
            existing = planned[name]
        elif name in DatasetCatalog.list():
            existing = _registered_as(name)
        else:
            planned[name] = tuple(wanted)
            continue
        if existing != tuple(wanted):
            raise DatasetConfigError(
                f"{KEY}[{index}] {list(cfg.DATASETS.COCO_JSON[index])!r}: the name {name!r} is "
                f"already registered (json_file={existing[0]!r}, image_root={existing[1]!r}, "
                f"evaluator_type={existing[2]!r}); choose another name"
            )
    for name, (json_file, image_root, evaluator_type) in planned.items():
        register_sca_coco_json(name, json_file, image_root, evaluator_type=evaluator_type)
        logger.info("Registered %r from %s (images in %s)", name, json_file, image_root)
    return [name for name, *_ in entries]
