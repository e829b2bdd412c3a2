"""JSON annotation files read with errors that name the file and the position."""

from __future__ import annotations

import json

from .errors import AnnotationError


def read_json(path: str) -> object:
    """``json.load`` of a UTF-8 file; undecodable bytes or invalid JSON raise
    :class:`AnnotationError` naming ``path`` and where the problem is."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except UnicodeDecodeError as e:
        raise AnnotationError(
            f"{path}: not UTF-8 text (byte offset {e.start}: {e.reason}); annotation files must "
            "be UTF-8 JSON"
        ) from None
    except json.JSONDecodeError as e:
        raise AnnotationError(
            f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from None
