"""Convert Visual Genome's raw region descriptions into SCA's DenseCap-split cache, once.

    python datasets/prepare_vg.py [--vg-root $DETECTRON2_DATASETS/vg] [--max-tokens 25]

Reads ``region_descriptions.json``, ``image_data.json`` and ``densecap_splits.json`` from the VG
folder, applies DenseCap's preprocessing and writes ``sca_cache/densecap_{train,val,test}.npz``
there; ``vg_densecap_*`` then load in seconds. The summary of kept and dropped regions is printed.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tqdm import tqdm

from sca.data.vg import default_vg_root, prepare_vg_cache, vg_cache_path
from sca.data.vg_preprocess import DENSECAP_MAX_TOKENS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--vg-root", default=None, help="VG folder (default: $DETECTRON2_DATASETS/vg)"
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=DENSECAP_MAX_TOKENS,
        help="drop phrases with more tokens than this, as DenseCap does (0: keep all)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    vg_root = args.vg_root or default_vg_root()
    splits = prepare_vg_cache(
        vg_root,
        max_tokens=args.max_tokens,
        progress=lambda records: tqdm(records, desc="VG images", unit="img"),
    )
    for split, data in splits.items():
        print(f"{data.summary.describe(split)}\n  -> {vg_cache_path(vg_root, split)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
