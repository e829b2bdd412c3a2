#!/usr/bin/env python
"""Time anything mode per image: captions for the surviving regions only (this project) against
captions for every grid point before filtering (``MODEL.SCA.ANYTHING.CAPTION_ALL_POINTS``, as
the official release does). Prints a Markdown table.

    python tools/benchmark_anything.py --config-file configs/sca_demo.yaml --input a.jpg b.png \\
        --opts MODEL.WEIGHTS output/sca_demo/model_final.pth
"""

import argparse
import os
import sys

try:  # first, so that a broken environment gives one message, not a deep traceback
    import sca  # noqa: F401
except ImportError as e:
    sys.exit(f"error: {e}")

import torch  # noqa: E402

from sca.benchmark.anything_modes import AnythingModeTimer  # noqa: E402
from sca.engine import SCAPredictor  # noqa: E402
from sca.model_zoo import resolve_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True, help="config YAML or model-zoo name")
    parser.add_argument("--input", nargs="+", required=True, help="image files")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="KEY VALUE ...")
    args = parser.parse_args()
    cfg = resolve_config(args.config_file)
    cfg.merge_from_list(args.opts)
    predictor = SCAPredictor(cfg)
    timer = AnythingModeTimer(predictor)
    side = predictor.anything_params.points_per_side
    print(f"grid {side}x{side}, threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")
    print(
        "| image | size | encoder (s) | survivors only: s, regions, captioned | "
        "every point: s, regions, captioned |"
    )
    print("|---|---|---:|---|---|")
    for path in args.input:
        encode = timer.set_image(path)
        cells = []
        for params in timer.modes:
            seconds, regions, captioned = timer.run(params)
            cells.append(f"{seconds + encode:.1f} s, {regions}, {captioned}")
            print(
                f"<!-- {path}: caption_all_points={params.caption_all_points}: {cells[-1]} -->",
                flush=True,
            )
        h, w = predictor.image.shape[:2]
        print(f"| {os.path.basename(path)} | {w}x{h} | {encode:.2f} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
