#!/usr/bin/env python
"""Segment and caption every image of a collection, on all processes of Detectron2's launch.

    python tools/caption_images.py --config-file sca_gpt2_large_vg --input photos/ --output out/
    python tools/caption_images.py --config-file cfg.yaml --num-gpus 8 --input list.txt \\
        --boxes boxes.jsonl --output out/

Exit codes: 0 every image captioned, 3 some inputs skipped (listed in OUTPUT/summary.json),
2 bad arguments. ``--help`` has the details.
"""

import sys

if __name__ == "__main__":  # the allocator is chosen when the process starts: before torch
    from sca_cpu_malloc import restart_with_jemalloc

    restart_with_jemalloc()

try:  # first, so that a broken environment gives one message, not a deep traceback
    import sca  # noqa: F401
except ImportError as e:
    sys.exit(f"error: {e}")

from sca.engine.batch import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
