"""glibc allocator settings for running SCA on the CPU."""

import ctypes
import ctypes.util
import logging

import torch
from detectron2.config import CfgNode

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MB = 1 << 20

logger = logging.getLogger(__name__)


def keep_freed_memory(cfg: CfgNode) -> bool:
    """On CPU (``MODEL.DEVICE``), with ``MODEL.SCA.CPU_KEEP_FREED_MEMORY``, let glibc's malloc
    keep freed blocks of up to 32 MB for reuse.

    A region pass frees and allocates activations of a few MB every layer. By default glibc
    serves such blocks with fresh ``mmap`` calls and unmaps them on free, so the kernel zero-fills
    every page again on first touch; reused heap memory skips that (the mixer runs ~20% faster
    here). Memory freed by Python is kept by the process instead of returned to the system.
    Returns whether the settings were applied (never on CUDA, or without glibc)."""
    if not cfg.MODEL.SCA.CPU_KEEP_FREED_MEMORY or torch.device(cfg.MODEL.DEVICE).type != "cpu":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    applied = all(
        mallopt(param, value) == 1
        for param, value in (
            (_M_MMAP_THRESHOLD, 32 * _MB),
            (_M_TRIM_THRESHOLD, 1024 * _MB),
            (_M_TOP_PAD, 256 * _MB),
        )
    )
    if applied:
        logger.info("glibc malloc: freed blocks up to 32 MB are kept for reuse (CPU run)")
    return applied
