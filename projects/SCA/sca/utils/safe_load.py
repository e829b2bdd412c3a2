"""Checkpoint reading that never executes pickled code, with errors that name the file."""

from __future__ import annotations

import pickle

import torch


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint whose loading would execute pickled code (or a pickle file): refused."""


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
