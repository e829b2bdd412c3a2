#!/usr/bin/env python
"""Serve SCA over HTTP: POST /v1/caption, POST /v1/anything, GET /healthz, GET /metrics, and the
OpenAPI page at /docs. Binds 127.0.0.1 unless --host says otherwise.

    python tools/serve.py --config-file output/sca_demo/config.yaml \\
        MODEL.WEIGHTS output/sca_demo/model_final.pth

The service, its limits and its flags: see :mod:`sca.engine.service` and docs/SERVING.md.
"""

import sys

if __name__ == "__main__":  # the allocator is chosen when the process starts: before torch
    from sca_cpu_malloc import restart_with_jemalloc

    restart_with_jemalloc()

try:  # first, so that a broken environment gives one message, not a deep traceback
    import sca  # noqa: F401
except ImportError as e:
    sys.exit(f"error: {e}")

from sca.engine.service.server import main  # noqa: E402

if __name__ == "__main__":
    main()
