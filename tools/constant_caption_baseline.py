#!/usr/bin/env python
"""The best single constant caption on a data set: the score a captioner that ignores the image
could reach. Every distinct caption of the training set is tried on every test region.

    python tools/constant_caption_baseline.py --train sca_shapes_train --test sca_shapes_test
"""

import argparse
import json

from detectron2.data import DatasetCatalog

import sca  # noqa: F401  (registers the data sets)
from sca.evaluation import evaluate_captions


def best_constant_caption(train: str, test: str, metric: str = "METEOR") -> dict:
    candidates = sorted(
        {c for d in DatasetCatalog.get(train) for a in d["annotations"] for c in a["captions"]}
    )
    references = [a["captions"] for d in DatasetCatalog.get(test) for a in d["annotations"]]
    scores = {}
    for caption in candidates:
        scores[caption] = evaluate_captions([caption] * len(references), references)[metric]
    best = max(scores, key=scores.get)
    return {"caption": best, metric: scores[best], "candidates": len(candidates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="sca_shapes_train")
    parser.add_argument("--test", default="sca_shapes_test")
    parser.add_argument("--metric", default="METEOR")
    args = parser.parse_args()
    print(json.dumps(best_constant_caption(args.train, args.test, args.metric), indent=2))


if __name__ == "__main__":
    main()
