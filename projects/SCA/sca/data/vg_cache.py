"""The compact cache of a preprocessed VG split: one uncompressed ``.npz`` that loads in seconds."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import numpy as np

from .errors import AnnotationError
from .vg_preprocess import VGSplit, VGSummary

# Bump when the preprocessing or the file layout changes, so stale caches are refused.
CACHE_VERSION = 1


def save_vg_split(path: str, split: VGSplit, max_tokens: int) -> None:
    """Write ``split`` to ``path`` (written to a temporary name first, then renamed)."""
    if any("\n" in c for c in split.captions):
        raise ValueError("VG captions must not contain newlines (they are newline-joined)")
    meta = {"version": CACHE_VERSION, "max_tokens": max_tokens, "summary": asdict(split.summary)}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(
        tmp,
        meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
        image_ids=split.image_ids,
        heights=split.heights,
        widths=split.widths,
        offsets=split.offsets,
        region_ids=split.region_ids,
        boxes=split.boxes,
        captions=np.frombuffer("\n".join(split.captions).encode("utf-8"), dtype=np.uint8),
    )
    os.replace(tmp, path)


def load_vg_split(path: str) -> VGSplit:
    """Read a split written by :func:`save_vg_split`."""
    with np.load(path) as data:
        meta = json.loads(data["meta"].tobytes().decode("utf-8"))
        if meta.get("version") != CACHE_VERSION:
            raise AnnotationError(
                f"{path} was written by cache version {meta.get('version')}, this code reads "
                f"version {CACHE_VERSION}: re-run `python datasets/prepare_vg.py`"
            )
        text = data["captions"].tobytes().decode("utf-8")
        split = VGSplit(
            image_ids=data["image_ids"],
            heights=data["heights"],
            widths=data["widths"],
            offsets=data["offsets"],
            region_ids=data["region_ids"],
            boxes=data["boxes"],
            captions=text.split("\n") if text else [],
            summary=VGSummary(**meta["summary"]),
        )
    if len(split.captions) != len(split.region_ids) or split.offsets[-1] != len(split.region_ids):
        raise AnnotationError(
            f"{path} is inconsistent ({len(split.captions)} captions, {len(split.region_ids)} "
            f"regions): re-run `python datasets/prepare_vg.py`"
        )
    return split
