#!/usr/bin/env python
"""The best single constant caption on a data set: the score a captioner that ignores the image
could reach. Every distinct caption of the training set is tried on every test region.

    python tools/constant_caption_baseline.py --train sca_shapes_train --test sca_shapes_test
"""

import argparse
import json

from sca.evaluation.baselines import best_constant_caption


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="sca_shapes_train")
    parser.add_argument("--test", default="sca_shapes_test")
    parser.add_argument("--metric", default="METEOR")
    args = parser.parse_args()
    print(json.dumps(best_constant_caption(args.train, args.test, args.metric), indent=2))


if __name__ == "__main__":
    main()
