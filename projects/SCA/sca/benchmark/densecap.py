"""The DenseCap mAP evaluation timed on synthetic data (:mod:`sca.evaluation.densecap_synthetic`),
METEOR's share apart. METEOR's start-up (JVM and paraphrase table, once per process) is left out
of the evaluation's time."""

from __future__ import annotations

import time

from ..evaluation import evaluate_densecap, shared_meteor
from ..evaluation.densecap_synthetic import make_densecap_data


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


def start_meteor() -> TimedMeteor:
    """The shared METEOR process, started by scoring one pair (not counted)."""
    meteor = TimedMeteor()
    meteor.scorer.score([("a red car", ["a red car"])])
    return meteor


def time_densecap_eval(
    meteor: TimedMeteor, num_images: int, preds_per_image: int, gt_per_image: int, seed: int = 0
) -> dict:
    """``evaluate_densecap`` on synthetic data of this size: seconds to make the data
    (``data_s``), to evaluate (``s``) and in METEOR (``meteor_s``), and the evaluation's result."""
    start = time.perf_counter()
    predictions, ground_truth = make_densecap_data(num_images, preds_per_image, gt_per_image, seed)
    data_s = time.perf_counter() - start
    meteor.seconds = 0.0
    start = time.perf_counter()
    result = evaluate_densecap(predictions, ground_truth, meteor=meteor)
    return {
        "data_s": data_s,
        "s": time.perf_counter() - start,
        "meteor_s": meteor.seconds,
        "result": result,
    }


def bench_densecap(smoke: bool) -> dict:
    """The benchmark's densecap_eval section: 5,000 images x 100 predictions (50 ground-truth
    regions each), or 20 x 10 (5) with ``smoke``; unavailable without Java or METEOR."""
    try:
        meteor = start_meteor()
    except Exception as e:
        return {"available": False, "reason": f"{type(e).__name__}: {e}"}
    images, preds = (20, 10) if smoke else (5000, 100)
    timing = time_densecap_eval(meteor, images, preds, 5 if smoke else 50, seed=0)
    return {
        "available": True,
        "images": images,
        "predictions_per_image": preds,
        "s": round(timing["s"], 2),
        "meteor_s": round(timing["meteor_s"], 2),
        "meteor_pairs": timing["result"]["num_meteor_pairs"],
    }
