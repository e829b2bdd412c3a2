"""The command line of ``tools/caption_images.py``: Detectron2's flags and the job's own."""

from __future__ import annotations

import argparse
import os

from detectron2.engine import default_argument_parser

EXIT_OK = 0
EXIT_ARGUMENTS = 2
EXIT_SKIPPED = 3

EPILOG = f"""
Caption every image of a collection, on all processes of Detectron2's launch:
    $ %(prog)s --config-file sca_gpt2_large_vg --input photos/ --output out/
    $ %(prog)s --config-file cfg.yaml --num-gpus 8 --input list.txt --boxes b.jsonl --output out/
    $ %(prog)s --config-file cfg.yaml --input dataset:sca_shapes_test --gt-boxes --output out/

Writes OUTPUT/shards/shard-RRRRR-of-WWWWW.jsonl (one line per image, written as it is done),
then OUTPUT/results.json (COCO-results style) and OUTPUT/summary.json. Rerun the same command to
resume a killed run: images already in the shards are not captioned again.

Exit codes: {EXIT_OK} every image captioned; {EXIT_SKIPPED} some inputs skipped (unreadable,
truncated, zero-size, not an image, over --max-pixels, no boxes; listed in summary.json);
{EXIT_ARGUMENTS} bad arguments or inputs.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = default_argument_parser(epilog=EPILOG)
    parser.description = "Segment and caption the regions of every image of a collection."
    parser.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="INPUT",
        help="a folder, a quoted glob, a .txt file of paths, or dataset:NAME for a registered data "
        "set; repeat the flag for several",
    )
    prompts = parser.add_mutually_exclusive_group()
    prompts.add_argument(
        "--anything", action="store_true", help="the model finds the regions (the default)"
    )
    prompts.add_argument(
        "--boxes",
        metavar="FILE",
        help="box prompts: COCO-style JSON (bbox XYWH) or JSONL lines "
        '{"file_name": ..., "boxes": [[x1, y1, x2, y2], ...]}',
    )
    prompts.add_argument(
        "--gt-boxes", action="store_true", help="prompt with a dataset:NAME input's annotated boxes"
    )
    parser.add_argument("--output", required=True, metavar="DIR", help="folder of the results")
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=0,
        metavar="N",
        help="skip images of more than N pixels, read from the header (0: no limit)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="images per forward (default: TEST.SCA.IMS_PER_BATCH)",
    )
    parser.add_argument(
        "--num-workers",
        type=int,
        metavar="N",
        help="image decoding processes (default: DATALOADER.NUM_WORKERS)",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parsed and checked arguments; a bad one exits with status 2 and a message."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.config_file:
        parser.error("--config-file is required (a YAML file or a model-zoo name)")
    for flag in ("max_pixels", "batch_size", "num_workers"):
        value = getattr(args, flag)
        if value is not None and value < (1 if flag == "batch_size" else 0):
            parser.error(f"--{flag.replace('_', '-')} {value}: out of range")
    if args.gt_boxes and not all(s.startswith("dataset:") for s in args.input):
        parser.error("--gt-boxes needs every --input to be dataset:NAME")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        parser.error(f"--output {args.output}: exists and is not a folder")
    args.prompt_source = "anything" if not (args.boxes or args.gt_boxes) else "gt"
    return args
