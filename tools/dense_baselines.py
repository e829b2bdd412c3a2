#!/usr/bin/env python
"""Baselines for a DenseCap mAP, from the files that ``--eval-only`` wrote (no model needed).

    python tools/dense_baselines.py output/sca_demo_dense/inference/sca_shapes_test

prints, next to the model's own mAP, the mAP of (1) the same captions and scores on random boxes
(uniform positions, sides drawn from the ground-truth boxes' range) and (2) the same boxes and
scores with one constant caption for every region (by default the best constant caption of
``tools/constant_caption_baseline.py``: the training caption with the highest METEOR on the test
regions).
"""

import argparse
import json

from sca.evaluation.baselines import dense_baselines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="an --eval-only output folder with densecap_*.json")
    parser.add_argument("--train", default="sca_shapes_train", help="for the constant caption")
    parser.add_argument("--caption", default="", help="the constant caption (default: the best)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = dense_baselines(args.folder, args.train, args.caption, args.seed)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
