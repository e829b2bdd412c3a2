"""Errors raised by the data package, each naming what the user has to look at."""

from __future__ import annotations

import os
from collections.abc import Iterable

from .paths import README_HINT


class DatasetNotFoundError(FileNotFoundError):
    """A registered data set's files are not where its loader expects them."""


class ImageReadError(OSError):
    """An image file is missing, unreadable or corrupt."""


class AnnotationError(ValueError):
    """An annotation record does not have the expected fields or values."""


class TrainingSampleError(RuntimeError):
    """Mapping a training sample failed (in the process or a data-loader worker); the message
    names the image (file and id), the sample's index and the original error."""


class DatasetConfigError(ValueError):
    """A data set named in the config (``DATASETS.COCO_JSON``) is malformed or clashes."""


def require_paths(dataset: str, paths: Iterable[str], layout: str, prepare: str) -> None:
    """Raise one :class:`DatasetNotFoundError` listing every path of ``paths`` that is missing.

    Args:
        dataset: the data set's registered name (or a description of it).
        paths: files or folders the loader needs.
        layout: the expected folder layout, shown verbatim in the message.
        prepare: what the user runs or downloads to create the missing files.
    """
    missing = [p for p in paths if not os.path.exists(p)]
    if not missing:
        return
    lines = [
        f"Data set '{dataset}' is not available: missing "
        + ", ".join(os.path.abspath(p) for p in missing),
        "Expected layout:",
        layout.rstrip(),
        f"To prepare it: {prepare}",
        README_HINT,
    ]
    raise DatasetNotFoundError("\n".join(lines))
