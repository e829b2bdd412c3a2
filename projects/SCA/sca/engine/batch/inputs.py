"""The images of a batch job: ``--input`` specs expanded into one sorted list of items.

An item's key is its path as the user gave it (a folder's files joined to the folder as written,
a glob's matches, a text file's lines) or a registered data set's ``file_name``. Keys order the
results and decide which process captions the item, so they must not depend on the machine.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import numpy as np
from detectron2.data import DatasetCatalog
from detectron2.structures import BoxMode

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
DATASET_PREFIX = "dataset:"


class BatchInputError(ValueError):
    """An ``--input`` or ``--boxes`` that cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class InputItem:
    """One image: ``key`` names it in the outputs, ``path`` opens it; ``boxes`` (N, 4) XYXY in the
    image's pixel frame are its prompts (None: the model finds its own regions)."""

    key: str
    path: str
    boxes: np.ndarray | None = None


def _folder_files(folder: str) -> list[str]:
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.join(parent, name))
    return found


def _list_file(path: str) -> list[tuple[str, str]]:
    """(key, path) of each non-empty, non-comment line; relative paths are opened from the list's
    folder."""
    base = os.path.dirname(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except (OSError, UnicodeDecodeError) as e:
        raise BatchInputError(f"--input {path}: cannot read the list of paths ({e})") from e
    return [(line, os.path.join(base, line)) for line in lines if line and not line.startswith("#")]


def dataset_boxes(record: dict) -> np.ndarray:
    """A dataset dict's annotation boxes as (N, 4) XYXY_ABS."""
    boxes = [
        BoxMode.convert(list(a["bbox"]), a.get("bbox_mode", BoxMode.XYWH_ABS), BoxMode.XYXY_ABS)
        for a in record.get("annotations", [])
    ]
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _dataset_items(name: str, gt_boxes: bool) -> list[InputItem]:
    if name not in DatasetCatalog.list():
        raise BatchInputError(
            f"--input {DATASET_PREFIX}{name}: no data set of that name is registered"
        )
    return [
        InputItem(r["file_name"], r["file_name"], dataset_boxes(r) if gt_boxes else None)
        for r in DatasetCatalog.get(name)
    ]


def _spec_items(spec: str, gt_boxes: bool) -> list[InputItem]:
    if spec.startswith(DATASET_PREFIX):
        return _dataset_items(spec[len(DATASET_PREFIX) :], gt_boxes)
    if os.path.isdir(spec):
        return [InputItem(p, p) for p in _folder_files(spec)]
    if os.path.isfile(spec) and spec.lower().endswith(".txt"):
        return [InputItem(key, path) for key, path in _list_file(spec)]
    if os.path.isfile(spec):
        return [InputItem(spec, spec)]
    matches = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
    if not matches:
        raise BatchInputError(f"--input {spec}: no such folder, file or matching files")
    return [InputItem(p, p) for p in matches]


def collect_inputs(specs: list[str], gt_boxes: bool = False) -> list[InputItem]:
    """All items of ``specs``, sorted by key; a key given twice is one item. With ``gt_boxes``,
    ``dataset:NAME`` items hold their annotated boxes as prompts."""
    items: dict[str, InputItem] = {}
    for spec in specs:
        for item in _spec_items(spec, gt_boxes):
            items.setdefault(item.key, item)
    if not items:
        raise BatchInputError(f"--input {' '.join(specs)}: no images found")
    return [items[k] for k in sorted(items)]
