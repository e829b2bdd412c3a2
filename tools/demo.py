#!/usr/bin/env python
"""Segment and caption regions of your own images: one PNG drawing and one JSON file per image.

    python tools/demo.py --config-file configs/sca_demo.yaml --input photos/*.jpg \\
        --output out/ --boxes '[[10, 20, 200, 240]]' --opts MODEL.WEIGHTS model_final.pth
    python tools/demo.py --config-file configs/sca_demo.yaml --input photos/ --output out/ \\
        --points '[[120, 80], [300, 200]]'
    python tools/demo.py --config-file configs/sca_demo.yaml --input photo.jpg --output out/ \\
        --anything

The prompt formats and the JSON written per image: see :mod:`sca.engine.demo`.
"""

import sys

try:  # first, so that a broken environment gives one message, not a deep traceback
    import sca  # noqa: F401
except ImportError as e:
    sys.exit(f"error: {e}")

from sca.engine.demo import main  # noqa: E402

if __name__ == "__main__":
    try:
        sys.exit(main())
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
