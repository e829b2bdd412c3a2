"""The benchmark report's environment entry, and its table: one row per variant and work."""

from __future__ import annotations

import os
import platform

import torch
import transformers
from tabulate import tabulate


def environment(device: torch.device) -> dict:
    """Versions, device, threads, CPU, load and allocator: what the timings depend on."""
    env = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "malloc": "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "system",
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def table_rows(report: dict) -> list[list]:
    """Rows of variant, work, ms, tokens/s and peak RSS (GB); failures show their error."""
    rows = []
    for variant, res in report["inference"].items():
        if "error" in res:
            rows.append([variant, res["error"][:60], "", "", ""])
        if "encoder" in res:
            rows.append([variant, "encoder / image", res["encoder"]["ms"], "", ""])
        for key, r in res.get("end_to_end", {}).items():
            if isinstance(r, dict):
                rows.append([variant, key, r["ms"], r["tokens_per_s"], r["peak_rss_gb"]])
            else:
                rows.append([variant, key, r, "", ""])
        if "captions_equal_to_first" in res:
            same = res["captions_equal_to_first"]
            rows.append([variant, "captions = first variant", same, "", ""])
    for variant, r in report["training"].items():
        if r.get("available", True):
            rows.append([variant, "training step", r["ms"], "", r["peak_rss_gb"]])
        else:
            rows.append([variant, r.get("error", r.get("reason", ""))[:60], "", "", ""])
    for variant, r in report.get("captions", {}).get("variants", {}).items():
        if "error" in r:
            rows.append([variant, r["error"][:60], "", "", ""])
            continue
        rows.append([variant, "test-set exact match", r["exact_match"], "", ""])
        rows.append([variant, "test-set captions = first", r["captions_equal_to_first"], "", ""])
    for name in ("anything", "densecap_eval"):
        r = report.get(name, {})
        if r.get("available"):
            rows.append(["", name, r.get("ms", 1000 * r.get("s", 0)), "", ""])
    return rows


def print_table(report: dict) -> None:
    """Print the report as a table."""
    headers = ["variant", "work", "ms", "tokens/s", "peak RSS GB"]
    print(tabulate(table_rows(report), headers=headers))
