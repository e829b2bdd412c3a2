"""Synthetic DenseCap evaluation data shaped like VG's DenseCap test split, to time
:func:`~sca.evaluation.evaluate_densecap` at full size without the data set.

Ground truth: ``gt_per_image`` regions per image (VG v1.2 averages about 50), some of them
near-duplicates so that merging has work to do, with captions from a small VG-like grammar.
Predictions: jittered copies of ground-truth boxes (IoU from about 0.3 to 1) captioned with the
reference, a word-swapped variant or an unrelated phrase, plus random boxes; random scores.
"""

from __future__ import annotations

import numpy as np

ADJECTIVES = (
    "red white black blue green small large wooden metal tall young old brown yellow".split()
)
NOUNS = (
    "man woman car dog cat tree building window sign table shirt plate bus train sky cloud "
    "grass fence horse street wall person boat clock light chair hat bag"
).split()
RELATIONS = "on in near behind under with beside of".split()
VERBS = "standing sitting walking parked riding holding wearing".split()
IMAGE_WIDTH, IMAGE_HEIGHT = 800, 600


def phrase(rng: np.random.Generator) -> str:
    """A caption of one of four VG-like forms."""
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
    """``n`` XYXY boxes inside the image, each side 5-60% of the image's."""
    w = rng.uniform(0.05, 0.6, n) * width
    h = rng.uniform(0.05, 0.6, n) * height
    x1 = rng.uniform(0, width - w)
    y1 = rng.uniform(0, height - h)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1).round(1)


def jitter(rng: np.random.Generator, boxes: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Each box's corners moved by up to ``amount`` (one per box) of its width and height."""
    w = (boxes[:, 2] - boxes[:, 0])[:, None]
    h = (boxes[:, 3] - boxes[:, 1])[:, None]
    scale = np.concatenate([w, h, w, h], axis=1) * amount[:, None]
    out = boxes + rng.uniform(-1, 1, boxes.shape) * scale
    out[:, 2] = np.maximum(out[:, 2], out[:, 0] + 1)
    out[:, 3] = np.maximum(out[:, 3], out[:, 1] + 1)
    return out.round(1)


def make_densecap_data(
    num_images: int, preds_per_image: int, gt_per_image: int, seed: int
) -> tuple[list[dict], list[dict]]:
    """Predictions and ground truth in :func:`~sca.evaluation.evaluate_densecap`'s format."""
    rng = np.random.default_rng(seed)
    predictions, ground_truth = [], []
    for image_id in range(num_images):
        gt_boxes = random_boxes(rng, gt_per_image, IMAGE_WIDTH, IMAGE_HEIGHT)
        dup = rng.random(gt_per_image) < 0.15  # near-duplicates, merged at IoU >= 0.7
        gt_boxes[dup] = jitter(rng, gt_boxes[np.flatnonzero(dup) - 1], np.full(dup.sum(), 0.03))
        gt_caps = [phrase(rng) for _ in range(gt_per_image)]
        ground_truth.append({"image_id": image_id, "boxes": gt_boxes.tolist(), "captions": gt_caps})

        n_near = preds_per_image // 2
        src = rng.integers(gt_per_image, size=n_near)
        near = jitter(rng, gt_boxes[src], rng.uniform(0.0, 0.25, n_near))
        far = random_boxes(rng, preds_per_image - n_near, IMAGE_WIDTH, IMAGE_HEIGHT)
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
