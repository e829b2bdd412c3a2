#!/usr/bin/env python
"""Benchmark SCA on CPU or CUDA with random weights of any shape (no downloads), in the manner of
Detectron2's tools/benchmark.py. Prints a table and writes JSON.

    python tools/benchmark.py --config-file configs/sca_vg.yaml --lm gpt2-large --device cuda
    python tools/benchmark.py --config-file configs/sca_vg.yaml --encoder vit_b --lm gpt2 \\
        --regions 1 64 --repeats 1 --sections encoder end_to_end
    python tools/benchmark.py --smoke --json out.json      # seconds; what the tests run

Sections: ``encoder`` (image-encoder time per image), ``end_to_end`` (one image with N box prompts,
exactly ``--tokens`` greedy tokens per region (MIN_NEW_TOKENS = MAX_NEW_TOKENS), and beam search),
``anything`` (anything mode per image), ``training`` (one iteration, forward + backward +
optimizer step, ``--train-images`` x ``--train-regions``), ``densecap_eval`` (the DenseCap
evaluation on synthetic data, as tools/benchmark_densecap_eval.py runs it), ``captions`` (a
trained model on ``--dataset``). Each timing is the median of ``--repeats`` runs after one
warm-up, with peak memory (RSS sampled every 5 ms; CUDA max allocated). Inference runs once per
``--variants`` entry (precision and attention switches) on the same weights, and reports how
many captions match the first variant's; training runs once per ``--train-variants`` entry.
Trailing ``KEY VALUE`` pairs override the config. The machinery lives in ``sca.benchmark``.
"""

# ruff: noqa: E402  (the restart below comes before the heavy imports)
import argparse
import json
from pathlib import Path

if __name__ == "__main__":  # as tools/train_net.py: the allocator is chosen before torch loads
    from sca_cpu_malloc import restart_with_jemalloc

    restart_with_jemalloc()

import torch

from sca.benchmark import (
    SECTIONS,
    TRAIN_VARIANTS,
    VARIANTS,
    BenchmarkSettings,
    print_table,
    run_benchmark,
)
from sca.utils.random_lm import LM_SHAPES


def argument_parser() -> argparse.ArgumentParser:
    default = BenchmarkSettings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", default=default.config_file)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--encoder", default=default.encoder, help="vit_b, vit_l or vit_h (default: config)"
    )
    parser.add_argument("--lm", default=default.lm, choices=sorted(LM_SHAPES))
    parser.add_argument("--regions", type=int, nargs="+", default=default.regions)
    parser.add_argument("--tokens", type=int, default=default.tokens)
    parser.add_argument("--beams", type=int, default=default.beams)
    parser.add_argument("--variants", nargs="+", default=default.variants, choices=list(VARIANTS))
    parser.add_argument(
        "--train-variants", nargs="+", default=default.train_variants, choices=list(TRAIN_VARIANTS)
    )
    parser.add_argument("--train-images", type=int, default=default.train_images)
    parser.add_argument("--train-regions", type=int, default=default.train_regions)
    parser.add_argument("--repeats", type=int, default=default.repeats)
    parser.add_argument(
        "--warmup", type=int, default=default.warmup, help="untimed runs before timing"
    )
    parser.add_argument("--sections", nargs="+", default=default.sections, choices=SECTIONS)
    parser.add_argument(
        "--dataset",
        default=default.dataset,
        help="captions section: the configured model with MODEL.WEIGHTS on this test set",
    )
    parser.add_argument("--json", default=default.json, help="write the report here")
    parser.add_argument("--profile", action="store_true", help="print an operator profile")
    parser.add_argument(
        "--sync-debug",
        action="store_true",
        help="CUDA: report where a training step and the largest inference wait for the GPU",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, one repeat: seconds")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE")
    return parser


def main() -> None:
    settings = BenchmarkSettings(**vars(argument_parser().parse_args()))
    report = run_benchmark(settings)
    print_table(report)
    if settings.json:
        Path(settings.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
