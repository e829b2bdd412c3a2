"""The embedded default data set: procedurally generated scenes of coloured shapes.

Each image holds a few circles, squares and triangles; each shape is a region whose caption names
its attributes ("a large red circle") and whose exact mask is its ``segmentation`` (COCO RLE).
Scenes come from fixed seeds, so the train and test splits are the same on every machine. Images
are rendered once into ``$DETECTRON2_DATASETS/sca_shapes`` and are then read like any other data
set; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from .paths import datasets_root

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (50, 80, 220),
    "yellow": (235, 210, 40),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": (0.12, 0.18), "large": (0.28, 0.36)}  # side as a fraction of the image side
SPLITS = {"train": (0, 600), "test": (1, 100)}  # split -> (seed, number of images)
IMAGE_SIDE = 128
MAX_SHAPES = 4
VERSION = 1


def scene(rng: random.Random, side: int = IMAGE_SIDE) -> list[dict]:
    """Up to MAX_SHAPES non-overlapping shapes: dicts with shape, color, size and XYXY box."""
    regions: list[dict] = []
    for _ in range(rng.randint(1, MAX_SHAPES)):
        for _attempt in range(20):
            size = rng.choice(sorted(SIZES))
            extent = int(side * rng.uniform(*SIZES[size]))
            x, y = rng.randint(2, side - extent - 2), rng.randint(2, side - extent - 2)
            box = [x, y, x + extent, y + extent]
            if all(_disjoint(box, r["bbox"]) for r in regions):
                shape, color = rng.choice(SHAPES), rng.choice(sorted(COLORS))
                regions.append({"shape": shape, "color": color, "size": size, "bbox": box})
                break
    return regions


def caption(region: dict) -> str:
    return f"a {region['size']} {region['color']} {region['shape']}"


def _disjoint(a: list[int], b: list[int], margin: int = 3) -> bool:
    return (
        a[2] + margin <= b[0]
        or b[2] + margin <= a[0]
        or a[3] + margin <= b[1]
        or b[3] + margin <= a[1]
    )


def _draw(draw: ImageDraw.ImageDraw, region: dict, fill: object) -> None:
    x1, y1, x2, y2 = region["bbox"]
    if region["shape"] == "circle":
        draw.ellipse([x1, y1, x2 - 1, y2 - 1], fill=fill)
    elif region["shape"] == "square":
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=fill)
    else:
        draw.polygon([((x1 + x2) / 2, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], fill=fill)


def render(regions: list[dict], rng: random.Random, side: int = IMAGE_SIDE) -> Image.Image:
    shade = rng.randint(20, 60)
    image = Image.new("RGB", (side, side), (shade, shade, shade + 10))
    draw = ImageDraw.Draw(image)
    for r in regions:
        _draw(draw, r, COLORS[r["color"]])
    return image


def region_mask(region: dict, side: int = IMAGE_SIDE) -> np.ndarray:
    """The exact (side, side) boolean mask of one shape: the pixels :func:`render` paints."""
    image = Image.new("1", (side, side), 0)
    _draw(ImageDraw.Draw(image), region, 1)
    return np.asarray(image, dtype=bool)


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def load_sca_shapes(split: str, root: str | None = None) -> list[dict]:
    """Dataset dicts of one split, rendering its images first if they are not there yet."""
    seed, count = SPLITS[split]
    folder = Path(root or datasets_root()) / "sca_shapes" / split
    index_file = folder / "index.json"
    if index_file.is_file():
        index = json.loads(index_file.read_text())
        if index.get("version") == VERSION and len(index["scenes"]) == count:
            return _dicts(folder, index["scenes"])
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    scenes = []
    for i in range(count):
        regions = scene(rng)
        image = render(regions, rng)
        _write_whole(folder / f"{i:05d}.png", lambda tmp, im=image: im.save(tmp, format="PNG"))
        scenes.append(regions)
    index = json.dumps({"version": VERSION, "scenes": scenes})
    _write_whole(index_file, lambda tmp: tmp.write_text(index))
    return _dicts(folder, scenes)


def _write_whole(path: Path, write: Callable[[Path], object]) -> None:
    """``write`` to a name of this call's own, then rename: the ranks of a run that render the
    same split at once write identical files, and none reads a partly written one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _dicts(folder: Path, scenes: list[list[dict]]) -> list[dict]:
    out = []
    for i, regions in enumerate(scenes):
        out.append(
            {
                "file_name": str((folder / f"{i:05d}.png").resolve()),
                "image_id": i,
                "height": IMAGE_SIDE,
                "width": IMAGE_SIDE,
                "annotations": [
                    {
                        "bbox": [float(v) for v in r["bbox"]],
                        "bbox_mode": BoxMode.XYXY_ABS,
                        "captions": [caption(r)],
                        "segmentation": _rle(region_mask(r)),
                        "id": i * MAX_SHAPES + j,
                    }
                    for j, r in enumerate(regions)
                ],
            }
        )
    return out


def register_sca_shapes() -> None:
    for split in SPLITS:
        name = f"sca_shapes_{split}"
        DatasetCatalog.register(name, lambda split=split: load_sca_shapes(split))
        MetadataCatalog.get(name).set(evaluator_type="dense_caption", split=split)
