"""Where the built-in data sets live on disk."""

from __future__ import annotations

import os

README_HINT = (
    "Set DETECTRON2_DATASETS to the folder holding your data sets (default: ./datasets); "
    "datasets/README.md lists the download sources and layout of every data set."
)


def datasets_root() -> str:
    """The data set root: ``$DETECTRON2_DATASETS``, else ``datasets`` (read on each call)."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
