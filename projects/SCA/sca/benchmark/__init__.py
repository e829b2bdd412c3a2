"""Benchmarks of SCA with random weights of any shape (no downloads): timing, peak memory,
profiles and GPU sync points, by section (image encoder, end to end, anything mode, training,
DenseCap evaluation, captions of a trained model). tools/benchmark.py is its command line.

The top layer: it may import every other part of ``sca``, and none of them imports it.
"""

from .report import print_table
from .run import run_benchmark
from .settings import SECTIONS, BenchmarkSettings
from .variants import TRAIN_VARIANTS, VARIANTS

__all__ = [
    "SECTIONS",
    "TRAIN_VARIANTS",
    "VARIANTS",
    "BenchmarkSettings",
    "print_table",
    "run_benchmark",
]
