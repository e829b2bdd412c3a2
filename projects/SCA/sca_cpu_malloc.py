"""Restart a tool's process under jemalloc, where it is installed, before torch is imported.

A CPU training step of SAM ViT-B + GPT-2 (2 x 16 regions, mixer checkpointed) frees and
allocates activations of a few MB in every mixer block of every pass. Under glibc's malloc its
heap grew by 0.15-0.3 GB per pass in some runs and not in others, so the step's peak RSS varied
from 4 to 7.4 GB for at most 2.4 GB in use; under jemalloc it is 3.4 GB in every run. jemalloc
must be preloaded when the process starts, hence the restart. Freed pages are kept for reuse,
never purged: with purging (jemalloc's default, or a 30 s decay) the same step took 34-37 s
instead of 24 s. Allocations of any size share the arenas (``oversize_threshold:0``): with a
separate arena for those over 8 MB, never purged, the step without checkpointing held 18-21 GB
(glibc 11.8, this setting 11.2). ``SCA_MALLOC=system`` keeps glibc's malloc.

A top-level module beside the ``sca`` package, not inside it: importing anything under ``sca``
imports torch, and the restart must come first. Needs only the standard library.
"""

from __future__ import annotations

import ctypes.util
import os
import sys

MALLOC_CONF = "oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1"


def jemalloc_environment(environ: dict[str, str], library: str | None) -> dict[str, str] | None:
    """The environment to restart with, or None to go on as is: opted out, no jemalloc, or
    something preloaded already (jemalloc after the restart, or the user's own choice)."""
    if environ.get("SCA_MALLOC", "jemalloc") != "jemalloc" or not library:
        return None
    if environ.get("LD_PRELOAD"):
        return None
    return {
        **environ,
        "LD_PRELOAD": library,
        "MALLOC_CONF": environ.get("MALLOC_CONF", MALLOC_CONF),
    }


def restart_with_jemalloc() -> None:
    """Re-execute this interpreter with the same command line and jemalloc preloaded (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    env = jemalloc_environment(dict(os.environ), ctypes.util.find_library("jemalloc"))
    if env is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
