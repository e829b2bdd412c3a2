"""The batch job of ``tools/caption_images.py``: a collection of images captioned on all processes,
resumable, into per-process shards merged into ``results.json`` and ``summary.json``."""

from .args import EXIT_ARGUMENTS, EXIT_OK, EXIT_SKIPPED, build_parser
from .job import main

__all__ = ["EXIT_ARGUMENTS", "EXIT_OK", "EXIT_SKIPPED", "build_parser", "main"]
