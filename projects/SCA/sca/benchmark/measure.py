"""Timing and peak memory: the median of repeated runs after a warm-up, with the resident
memory sampled every 5 ms and CUDA's max allocated memory."""

from __future__ import annotations

import os
import resource
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import torch


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resident_bytes() -> int:
    """This process's resident memory now (Linux), else its peak so far."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak resident memory (sampled) and CUDA max allocated memory inside a ``with`` block."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_rss = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak_rss = max(self.peak_rss, resident_bytes())

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.peak_rss = resident_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, resident_bytes())

    def summary(self) -> dict:
        """``peak_rss_gb``, and ``cuda_max_allocated_gb`` on CUDA."""
        out = {"peak_rss_gb": round(self.peak_rss / 2**30, 3)}
        if self.device.type == "cuda":
            out["cuda_max_allocated_gb"] = round(
                torch.cuda.max_memory_allocated(self.device) / 2**30, 3
            )
        return out


def timed(
    fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int = 1
) -> tuple[dict, Any]:
    """The median wall time of ``fn()`` in ms over ``repeats`` runs after ``warmup`` runs, with
    the peak memory of them all, and what the last run returned."""
    with PeakMemory(device) as memory:
        for _ in range(warmup):
            fn()
        synchronize(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = fn()
            synchronize(device)
            times.append(time.perf_counter() - start)
    return {"ms": round(1000 * statistics.median(times), 2), **memory.summary()}, result
