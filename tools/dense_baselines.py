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
import os
import random
import sys

from detectron2.data import DatasetCatalog

import sca  # noqa: F401  (registers the data sets)
from sca.evaluation import evaluate_densecap
from sca.evaluation.densecap_evaluator import GROUND_TRUTH_FILE, PREDICTIONS_FILE

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from constant_caption_baseline import best_constant_caption  # noqa: E402


def random_boxes(
    predictions: list[dict],
    ground_truth: list[dict],
    image_sizes: dict[object, tuple[int, int]],
    seed: int = 0,
) -> list[dict]:
    """Each predicted box moved to a random place inside its (height, width) image with random
    sides in the ground-truth boxes' range; captions and scores kept."""
    rng = random.Random(seed)
    sides = [s for g in ground_truth for b in g["boxes"] for s in (b[2] - b[0], b[3] - b[1])]
    out = []
    for p in predictions:
        height, width = image_sizes[p["image_id"]]
        boxes = []
        for _ in p["boxes"]:
            w, h = rng.uniform(min(sides), max(sides)), rng.uniform(min(sides), max(sides))
            x, y = rng.uniform(0, max(width - w, 0)), rng.uniform(0, max(height - h, 0))
            boxes.append([x, y, x + w, y + h])
        out.append({**p, "boxes": boxes})
    return out


def constant_caption(predictions: list[dict], caption: str) -> list[dict]:
    return [{**p, "captions": [caption] * len(p["captions"])} for p in predictions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="an --eval-only output folder with densecap_*.json")
    parser.add_argument("--train", default="sca_shapes_train", help="for the constant caption")
    parser.add_argument("--caption", default="", help="the constant caption (default: the best)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with open(os.path.join(args.folder, PREDICTIONS_FILE)) as f:
        blob = json.load(f)
    with open(os.path.join(args.folder, GROUND_TRUTH_FILE)) as f:
        ground_truth = json.load(f)
    predictions, quirk = blob["predictions"], blob["last_target_quirk"]
    sizes = {d["image_id"]: (d["height"], d["width"]) for d in DatasetCatalog.get(blob["dataset"])}
    caption = args.caption or best_constant_caption(args.train, blob["dataset"])["caption"]

    def score(preds: list[dict]) -> dict:
        r = evaluate_densecap(preds, ground_truth, last_target_quirk=quirk)
        return {"mAP": 100 * r["map"], "det_mAP": 100 * r["det_map"]}

    results = {
        "model": score(predictions),
        "random_boxes_same_captions": score(
            random_boxes(predictions, ground_truth, sizes, args.seed)
        ),
        f"constant_caption ({caption!r})": score(constant_caption(predictions, caption)),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
