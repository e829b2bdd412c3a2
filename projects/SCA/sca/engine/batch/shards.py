"""Per-process JSONL shards: which process owns an image, and lines that survive SIGKILL.

A line is complete once it ends with a newline; each is flushed and fsynced as it is written, so a
killed run leaves at most a torn last line, which the next run cuts off before appending.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def owner(key: str, world_size: int) -> int:
    """The rank that captions the item ``key``: the same for a given world size on any machine."""
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % world_size


def shard_path(output_dir: str | Path, rank: int, world_size: int) -> Path:
    return Path(output_dir) / "shards" / f"shard-{rank:05d}-of-{world_size:05d}.jsonl"


def repair(path: Path) -> list[dict]:
    """The complete lines of a shard, after cutting the file back to its last complete one (a line
    without its newline, or not JSON, is torn)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    records, good = [], 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
        good += len(line)
    if good != len(data):
        with open(path, "r+b") as f:
            f.truncate(good)
            os.fsync(f.fileno())
    return records


def read_shard(path: Path) -> dict[str, dict]:
    """A shard's last line per file name (a rerun appends a new line for an image it retried)."""
    return {r["file_name"]: r for r in repair(path)}


class ShardWriter:
    """Appends one JSON line per image, flushed and fsynced before the next."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
