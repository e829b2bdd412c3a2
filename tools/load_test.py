#!/usr/bin/env python
"""Load-test the HTTP service on loopback: 8 clients x 50 requests, with dynamic batching and then
one request at a time, each phase against its own server process (tools/serve.py's).

    python tools/load_test.py --config-file output/sca_demo/config.yaml \\
        MODEL.WEIGHTS output/sca_demo/model_final.pth

Prints p50/p99 latency, regions/s, requests per model call, the server's RSS and the host's
stall time (other processes in the way) per phase;
exit code 1 when any request got a 5xx or no answer. See :mod:`sca.benchmark.serve_load`.
"""

import sys

try:  # first, so that a broken environment gives one message, not a deep traceback
    import sca  # noqa: F401
except ImportError as e:
    sys.exit(f"error: {e}")

from sca.benchmark.serve_load import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
