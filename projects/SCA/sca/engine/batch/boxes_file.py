"""``--boxes FILE``: box prompts per image, as a COCO-style JSON or as JSONL.

- COCO-style JSON: ``images`` with ``id`` and ``file_name``, ``annotations`` with ``image_id`` and
  ``bbox`` as XYWH;
- JSONL: one ``{"file_name": ..., "boxes": [[x1, y1, x2, y2], ...]}`` per line.

A ``file_name`` matches the input whose key is that path or ends with ``/file_name`` (a COCO file's
names are relative to its image folder).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from .inputs import BatchInputError, InputItem


def _box(value, where: str, xywh: bool) -> list[float]:
    if (
        not isinstance(value, list)
        or len(value) != 4
        or not all(isinstance(v, int | float) and math.isfinite(v) for v in value)
    ):
        raise BatchInputError(f"{where}: expected 4 finite numbers, got {value!r}")
    if xywh:
        x, y, w, h = value
        return [x, y, x + w, y + h]
    return [float(v) for v in value]


def _read_coco(path: str, data: dict) -> dict[str, list[list[float]]]:
    if not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
        raise BatchInputError(f"{path}: a COCO-style file needs 'images' and 'annotations' lists")
    names: dict[object, str] = {}
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise BatchInputError(f"{path}: images[{i}] needs 'id' and 'file_name'")
        names[image["id"]] = str(image["file_name"])
    boxes: dict[str, list[list[float]]] = {name: [] for name in names.values()}
    for i, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{i}]"
        if not isinstance(ann, dict) or ann.get("image_id") not in names:
            raise BatchInputError(f"{where}: 'image_id' names no entry of 'images'")
        boxes[names[ann["image_id"]]].append(_box(ann.get("bbox"), f"{where}.bbox", xywh=True))
    return boxes


def _read_jsonl(path: str, text: str) -> dict[str, list[list[float]]]:
    boxes: dict[str, list[list[float]]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise BatchInputError(f"{path}:{n}: not JSON ({e})") from e
        if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
            raise BatchInputError(f"{path}:{n}: expected an object with a 'file_name' string")
        if not isinstance(entry.get("boxes"), list):
            raise BatchInputError(f"{path}:{n}: 'boxes' must be a list of [x1, y1, x2, y2]")
        found = boxes.setdefault(entry["file_name"], [])
        for j, b in enumerate(entry["boxes"]):
            found.append(_box(b, f"{path}:{n}: boxes[{j}]", xywh=False))
    return boxes


def read_boxes_file(path: str) -> dict[str, np.ndarray]:
    """``file_name`` -> (N, 4) XYXY boxes."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise BatchInputError(f"--boxes {path}: cannot read it ({e})") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and "file_name" not in data:  # not a one-line JSONL
        raw = _read_coco(path, data)
    else:
        raw = _read_jsonl(path, text)
    return {k: np.asarray(v, dtype=np.float64).reshape(-1, 4) for k, v in raw.items()}


def attach_boxes(
    items: list[InputItem], boxes: dict[str, np.ndarray], path: str
) -> list[InputItem]:
    """``items`` with their boxes from ``boxes``; an item without an entry keeps None (it is
    skipped as having no boxes). Raises when an entry matches no input or several."""
    by_name: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        parts = item.key.replace("\\", "/").split("/")
        for start in range(len(parts)):
            by_name.setdefault("/".join(parts[start:]), []).append(i)
    out = list(items)
    for name, value in boxes.items():
        matches = by_name.get(name.replace("\\", "/").removeprefix("./"), [])
        if len(matches) != 1:
            what = "no input" if not matches else f"{len(matches)} inputs"
            raise BatchInputError(f"--boxes {path}: file_name {name!r} matches {what}")
        out[matches[0]] = dataclasses.replace(items[matches[0]], boxes=value)
    return out
