"""Where the time goes in one call: an operator profile, and the points where the CPU waits for
the GPU (torch's sync debug mode)."""

from __future__ import annotations

import collections
import traceback
import warnings
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity
from torch.profiler import profile as torch_profile

from .measure import synchronize


def print_profile(
    fn: Callable[[], object], device: torch.device, title: str, rows: int = 25
) -> None:
    """Print the operators that took the most time in one call of ``fn``."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        fn()
        synchronize(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"---- profile: {title}")
    print(prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=50))


def sync_points(fn: Callable[[], object], device: torch.device) -> dict[str, int]:
    """Where one call of ``fn`` makes the CPU wait for the GPU: the innermost frame outside torch
    of each wait, with how often it waited there (nothing on CPU). A wait while work is queued
    leaves the GPU idle until the CPU has queued the next kernels."""
    if device.type != "cuda":
        return {}
    found: collections.Counter = collections.Counter()

    def record(*_args, **_kwargs) -> None:
        frames = [
            f
            for f in traceback.extract_stack()[:-1]
            if "/torch/" not in f.filename and "warnings" not in f.filename
        ]
        f = frames[-1]
        found[f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.line}"] += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
            synchronize(device)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return dict(found.most_common())
