#!/usr/bin/env python
"""Quality of a trained model's masks on a data set whose annotations carry masks.

    python tools/mask_quality.py --config-file configs/sca_demo_dense.yaml \\
        MODEL.WEIGHTS output/sca_demo_dense/model_final.pth

Box prompts: each annotation's box prompts the model; the mean mask IoU with the annotation's
mask is reported. Anything mode (MODEL.SCA.ANYTHING.*): the regions the model finds by itself
are matched to the annotations (each annotation to the found mask of highest IoU); an annotation
is recovered when that IoU is at least --recovery-iou, and its caption is right when the found
region's caption equals one of the annotation's captions exactly (case and spaces aside).
Prints JSON.
"""

import argparse
import json

from sca.config import get_sca_cfg
from sca.engine.mask_quality import mask_quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--dataset", default="")
    parser.add_argument("--recovery-iou", type=float, default=0.75)
    parser.add_argument("--skip-boxes", action="store_true", help="anything mode only")
    parser.add_argument("--skip-anything", action="store_true", help="box prompts only")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args()
    cfg = get_sca_cfg(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    results = mask_quality(
        cfg,
        args.dataset,
        args.recovery_iou,
        box_prompts=not args.skip_boxes,
        anything=not args.skip_anything,
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
