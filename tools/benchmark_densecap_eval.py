#!/usr/bin/env python
"""Time the DenseCap mAP evaluation (``sca.evaluation.evaluate_densecap``) on synthetic data shaped
like VG's DenseCap test split (``sca.evaluation.densecap_synthetic``): 5,000 images, 100
predictions each by default. METEOR's start-up (JVM and paraphrase table, once per process) is
timed apart from the evaluation.

    python tools/benchmark_densecap_eval.py [--num-images 5000] [--preds-per-image 100]
"""

import argparse
import time

from sca.benchmark.densecap import start_meteor, time_densecap_eval


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-images", type=int, default=5000)
    parser.add_argument("--preds-per-image", type=int, default=100)
    parser.add_argument("--gt-per-image", type=int, default=50, help="VG v1.2 averages about 50")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    meteor = start_meteor()
    print(f"METEOR start-up (once per process): {time.perf_counter() - start:.1f} s")
    timing = time_densecap_eval(
        meteor, args.num_images, args.preds_per_image, args.gt_per_image, args.seed
    )
    result, total, meteor_s = timing["result"], timing["s"], timing["meteor_s"]
    print(f"synthetic data: {timing['data_s']:.1f} s")
    pairs = result["num_meteor_pairs"]
    print(
        f"evaluate_densecap: {args.num_images} images x {args.preds_per_image} predictions "
        f"({result['num_detections']} detections, {result['num_targets']} merged targets of "
        f"{args.num_images * args.gt_per_image} boxes): {total:.1f} s"
    )
    print(
        f"  METEOR: {pairs} pairs in {meteor_s:.1f} s ({pairs / max(meteor_s, 1e-9):.0f} pairs/s); "
        f"matching and AP: {total - meteor_s:.1f} s"
    )
    print(f"  mAP {100 * result['map']:.2f}, detection mAP {100 * result['det_map']:.2f}")


if __name__ == "__main__":
    main()
