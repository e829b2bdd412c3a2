#!/usr/bin/env python
"""A web page to segment and caption regions of an uploaded image (Gradio).

    python tools/app.py --config-file configs/sca_demo.yaml --opts MODEL.WEIGHTS model_final.pth

The page, its limits and its flags: see :mod:`sca.engine.web_app`.
"""

import sys

try:  # first, so that a broken environment gives one message, not a deep traceback
    import sca  # noqa: F401
except ImportError as e:
    sys.exit(f"error: {e}")

from sca.engine.web_app import main  # noqa: E402

if __name__ == "__main__":
    main()
