"""Safe, atomic checkpoint file I/O shared by the trainer's checkpointer and SAM loading."""

from __future__ import annotations

import glob
import os
import pickle
from collections.abc import Callable
from typing import IO

import torch


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint whose loading would execute pickled code (or a pickle file): refused."""


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Create or replace ``path`` atomically with what ``write(f)`` writes to a binary file."""
    folder = os.path.dirname(os.path.abspath(path))
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)
    for stale in glob.glob(glob.escape(path) + ".*.tmp"):  # left by killed writers
        os.unlink(stale)


def safe_torch_load(filename: str) -> object:
    """``torch.load(filename, weights_only=True)`` on CPU, with errors that name the file."""
    try:
        return torch.load(filename, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()
        raise UnsafeCheckpointError(
            f"Refusing to load {filename}: it holds more than tensors and plain containers, and "
            "unpickling it could execute code. SCA loads checkpoints with "
            "torch.load(weights_only=True): its own checkpoints, official SAM .pth files and "
            "converted releases (tools/convert_sca_release.py) load. If you trust the file, "
            "re-save its state dict with torch.save. "
            f"({reason[-1] if reason else type(e).__name__})"
        ) from None
    except RuntimeError as e:
        raise OSError(
            f"Cannot read checkpoint {filename} (truncated, or not written by torch.save): {e}"
        ) from e
