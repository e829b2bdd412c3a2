"""All shards merged by rank 0 into ``results.json`` (COCO-results style) and ``summary.json``."""

from __future__ import annotations

import json
from pathlib import Path

from ...utils.atomic_file import atomic_write
from .inputs import InputItem
from .shards import read_shard, shard_path


def _xywh(box: list[float]) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1, y1, round(x2 - x1, 5), round(y2 - y1, 5)]


def read_all_shards(output_dir: str | Path, world_size: int) -> dict[str, dict]:
    """Every image's last line over the shards of ``world_size`` processes."""
    lines: dict[str, dict] = {}
    for rank in range(world_size):
        lines.update(read_shard(shard_path(output_dir, rank, world_size)))
    return lines


def coco_results(items: list[InputItem], lines: dict[str, dict]) -> list[dict]:
    """One entry per region, by file name then region order; ``image_id`` is the index of the
    image in the sorted input list."""
    results = []
    for image_id, item in enumerate(items):
        for region in lines[item.key].get("regions", []):
            results.append(
                {
                    "file_name": item.key,
                    "image_id": image_id,
                    "bbox": _xywh(region["box"]),
                    "segmentation": region["segmentation"],
                    "caption": region["caption"],
                    "caption_score": region["caption_score"],
                    "score": region["score"],
                }
            )
    return results


def merge(
    output_dir: str | Path, items: list[InputItem], world_size: int, summary_extra: dict
) -> dict:
    """Writes ``results.json`` and ``summary.json``; returns the summary. Raises when an input
    has no line in any shard (a process did not finish)."""
    lines = read_all_shards(output_dir, world_size)
    missing = [item.key for item in items if item.key not in lines]
    if missing:
        raise RuntimeError(f"{len(missing)} images have no line in the shards, e.g. {missing[0]}")
    results = coco_results(items, lines)
    skipped = {i.key: lines[i.key]["skipped"] for i in items if "skipped" in lines[i.key]}
    summary = {
        "images": len(items),
        "images_done": len(items) - len(skipped),
        "images_skipped": len(skipped),
        "skipped": skipped,
        "regions": len(results),
        **summary_extra,
    }
    with atomic_write(Path(output_dir) / "results.json", "w") as f:
        f.write(json.dumps(results, sort_keys=True))
    with atomic_write(Path(output_dir) / "summary.json", "w") as f:
        f.write(json.dumps(summary, sort_keys=True, indent=2) + "\n")
    return summary
