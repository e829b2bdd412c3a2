#!/usr/bin/env python
"""Time the DenseCap mAP evaluation (``sca.evaluation.evaluate_densecap``) on synthetic data shaped
like VG's DenseCap test split: 5,000 images, 100 predictions each by default.

    python tools/benchmark_densecap_eval.py [--num-images 5000] [--preds-per-image 100]

Ground truth: ``--gt-per-image`` regions per image (VG v1.2 averages about 50), some of them
near-duplicates so that merging has work to do, with captions from a small VG-like grammar.
Predictions: jittered copies of ground-truth boxes (IoU from about 0.3 to 1) captioned with the
reference, a word-swapped variant or an unrelated phrase, plus random boxes; random scores.
METEOR's start-up (JVM and paraphrase table, once per process) is timed apart from the evaluation.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sca.evaluation import evaluate_densecap, shared_meteor

ADJECTIVES = (
    "red white black blue green small large wooden metal tall young old brown yellow".split()
)
NOUNS = (
    "man woman car dog cat tree building window sign table shirt plate bus train sky cloud "
    "grass fence horse street wall person boat clock light chair hat bag"
).split()
RELATIONS = "on in near behind under with beside of".split()
VERBS = "standing sitting walking parked riding holding wearing".split()


def phrase(rng: np.random.Generator) -> str:
    a, b = rng.choice(ADJECTIVES, 2)
    n1, n2 = rng.choice(NOUNS, 2)
    form = rng.integers(4)
    if form == 0:
        return f"{a} {n1}"
    if form == 1:
        return f"a {a} {n1} {rng.choice(RELATIONS)} the {n2}"
    if form == 2:
        return f"{n1} {rng.choice(VERBS)} {rng.choice(RELATIONS)} {b} {n2}"
    return f"the {n1} is {a}"


def random_boxes(rng: np.random.Generator, n: int, width: int, height: int) -> np.ndarray:
    w = rng.uniform(0.05, 0.6, n) * width
    h = rng.uniform(0.05, 0.6, n) * height
    x1 = rng.uniform(0, width - w)
    y1 = rng.uniform(0, height - h)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1).round(1)


def jitter(rng: np.random.Generator, boxes: np.ndarray, amount: np.ndarray) -> np.ndarray:
    w = (boxes[:, 2] - boxes[:, 0])[:, None]
    h = (boxes[:, 3] - boxes[:, 1])[:, None]
    scale = np.concatenate([w, h, w, h], axis=1) * amount[:, None]
    out = boxes + rng.uniform(-1, 1, boxes.shape) * scale
    out[:, 2] = np.maximum(out[:, 2], out[:, 0] + 1)
    out[:, 3] = np.maximum(out[:, 3], out[:, 1] + 1)
    return out.round(1)


def make_data(
    num_images: int, preds_per_image: int, gt_per_image: int, seed: int
) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    predictions, ground_truth = [], []
    for image_id in range(num_images):
        width, height = 800, 600
        gt_boxes = random_boxes(rng, gt_per_image, width, height)
        dup = rng.random(gt_per_image) < 0.15  # near-duplicates, merged at IoU >= 0.7
        gt_boxes[dup] = jitter(rng, gt_boxes[np.flatnonzero(dup) - 1], np.full(dup.sum(), 0.03))
        gt_caps = [phrase(rng) for _ in range(gt_per_image)]
        ground_truth.append({"image_id": image_id, "boxes": gt_boxes.tolist(), "captions": gt_caps})

        n_near = preds_per_image // 2
        src = rng.integers(gt_per_image, size=n_near)
        near = jitter(rng, gt_boxes[src], rng.uniform(0.0, 0.25, n_near))
        far = random_boxes(rng, preds_per_image - n_near, width, height)
        captions = []
        for i in src:
            kind = rng.integers(3)
            words = gt_caps[i].split()
            if kind == 1:
                words[rng.integers(len(words))] = str(rng.choice(NOUNS))
            captions.append(" ".join(words) if kind < 2 else phrase(rng))
        captions += [phrase(rng) for _ in range(len(far))]
        predictions.append(
            {
                "image_id": image_id,
                "boxes": np.concatenate([near, far]).tolist(),
                "captions": captions,
                "scores": rng.random(preds_per_image).tolist(),
            }
        )
    return predictions, ground_truth


class TimedMeteor:
    """Delegates to the shared METEOR process and adds up the time spent in it."""

    def __init__(self) -> None:
        self.scorer = shared_meteor()
        self.seconds = 0.0

    def score(self, pairs: list[tuple[str, list[str]]]) -> list[float]:
        start = time.perf_counter()
        scores = self.scorer.score(pairs)
        self.seconds += time.perf_counter() - start
        return scores


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-images", type=int, default=5000)
    parser.add_argument("--preds-per-image", type=int, default=100)
    parser.add_argument("--gt-per-image", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    predictions, ground_truth = make_data(
        args.num_images, args.preds_per_image, args.gt_per_image, args.seed
    )
    print(f"synthetic data: {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    meteor = TimedMeteor()
    meteor.scorer.score([("a red car", ["a red car"])])
    print(f"METEOR start-up (once per process): {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    result = evaluate_densecap(predictions, ground_truth, meteor=meteor)
    total = time.perf_counter() - start
    pairs = result["num_meteor_pairs"]
    print(
        f"evaluate_densecap: {args.num_images} images x {args.preds_per_image} predictions "
        f"({result['num_detections']} detections, {result['num_targets']} merged targets of "
        f"{args.num_images * args.gt_per_image} boxes): {total:.1f} s"
    )
    print(
        f"  METEOR: {pairs} pairs in {meteor.seconds:.1f} s "
        f"({pairs / max(meteor.seconds, 1e-9):.0f} pairs/s); "
        f"matching and AP: {total - meteor.seconds:.1f} s"
    )
    print(f"  mAP {100 * result['map']:.2f}, detection mAP {100 * result['det_map']:.2f}")


if __name__ == "__main__":
    main()
