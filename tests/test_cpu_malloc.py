"""sca_cpu_malloc: CPU runs restart under jemalloc where it is installed, once."""

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sca_cpu_malloc import MALLOC_CONF, jemalloc_environment

ROOT = Path(__file__).resolve().parents[1]

JEMALLOC = ctypes.util.find_library("jemalloc")


def test_the_restart_environment():
    env = jemalloc_environment({"PATH": "/bin"}, "libjemalloc.so.2")
    assert env == {"PATH": "/bin", "LD_PRELOAD": "libjemalloc.so.2", "MALLOC_CONF": MALLOC_CONF}
    own = jemalloc_environment({"MALLOC_CONF": "narenas:2"}, "libjemalloc.so.2")
    assert own["MALLOC_CONF"] == "narenas:2"  # a user's settings are kept
    assert jemalloc_environment({}, None) is None  # not installed
    assert jemalloc_environment({"SCA_MALLOC": "system"}, "libjemalloc.so.2") is None
    # preloaded: after the restart (no loop), or the user's own allocator
    assert jemalloc_environment({"LD_PRELOAD": "libtcmalloc.so.4"}, "libjemalloc.so.2") is None


def _loaded_allocator(env: dict[str, str]) -> str:
    code = (
        "import sca_cpu_malloc; sca_cpu_malloc.restart_with_jemalloc(); "
        "print('jemalloc' if 'libjemalloc' in open('/proc/self/maps').read() else 'system')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(
    JEMALLOC is None or not sys.platform.startswith("linux"),
    reason="no jemalloc (tools/setup_env.sh installs Debian's libjemalloc2 where apt works)",
)
def test_a_process_restarts_under_jemalloc():
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "SCA_MALLOC")}
    assert _loaded_allocator(env) == "jemalloc"
    assert _loaded_allocator({**env, "SCA_MALLOC": "system"}) == "system"
