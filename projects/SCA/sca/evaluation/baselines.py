"""Baselines that put a DenseCap mAP or a caption score in context, without a model.

- :func:`random_boxes`: the model's captions and scores on random boxes (is the mAP earned by
  the boxes?);
- :func:`constant_caption`: the model's boxes and scores with one caption for every region (is
  it earned by the captions?);
- :func:`best_constant_caption`: the training caption that scores best on every test region,
  the score a captioner that ignores the image could reach.

:func:`dense_baselines` scores all three from the files that an ``--eval-only`` run wrote.
"""

import json
import os
import random

from detectron2.data import DatasetCatalog

from .caption_metrics import evaluate_captions
from .densecap_evaluator import GROUND_TRUTH_FILE, PREDICTIONS_FILE
from .densecap_map import evaluate_densecap


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
    """The predictions with ``caption`` for every region; boxes and scores kept."""
    return [{**p, "captions": [caption] * len(p["captions"])} for p in predictions]


def best_constant_caption(train: str, test: str, metric: str = "METEOR") -> dict:
    """Every distinct caption of the registered data set ``train`` tried on every region of
    ``test``: the best one, its ``metric`` and the number of candidates."""
    candidates = sorted(
        {c for d in DatasetCatalog.get(train) for a in d["annotations"] for c in a["captions"]}
    )
    references = [a["captions"] for d in DatasetCatalog.get(test) for a in d["annotations"]]
    scores = {}
    for caption in candidates:
        scores[caption] = evaluate_captions([caption] * len(references), references)[metric]
    best = max(scores, key=scores.get)
    return {"caption": best, metric: scores[best], "candidates": len(candidates)}


def dense_baselines(folder: str, train: str, caption: str = "", seed: int = 0) -> dict:
    """The mAP and detection mAP (x 100) of the model, of :func:`random_boxes` and of
    :func:`constant_caption`, from the ``densecap_*.json`` files of an ``--eval-only`` output
    ``folder``. Without ``caption``, the best constant caption of ``train`` on the evaluated
    data set is used."""
    with open(os.path.join(folder, PREDICTIONS_FILE)) as f:
        blob = json.load(f)
    with open(os.path.join(folder, GROUND_TRUTH_FILE)) as f:
        ground_truth = json.load(f)
    predictions, quirk = blob["predictions"], blob["last_target_quirk"]
    sizes = {d["image_id"]: (d["height"], d["width"]) for d in DatasetCatalog.get(blob["dataset"])}
    caption = caption or best_constant_caption(train, blob["dataset"])["caption"]

    def score(preds: list[dict]) -> dict:
        r = evaluate_densecap(preds, ground_truth, last_target_quirk=quirk)
        return {"mAP": 100 * r["map"], "det_mAP": 100 * r["det_map"]}

    return {
        "model": score(predictions),
        "random_boxes_same_captions": score(random_boxes(predictions, ground_truth, sizes, seed)),
        f"constant_caption ({caption!r})": score(constant_caption(predictions, caption)),
    }
