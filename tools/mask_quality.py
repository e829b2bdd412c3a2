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

import numpy as np
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from pycocotools import mask as mask_utils

import sca
from sca.engine import SCACheckpointer, SCATrainer


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, H, W) x (M, H, W) boolean masks -> (N, M) IoU."""
    p = pred.reshape(len(pred), -1).astype(np.float64)
    g = gt.reshape(len(gt), -1).astype(np.float64)
    inter = p @ g.T
    union = p.sum(1)[:, None] + g.sum(1)[None, :] - inter
    return inter / np.maximum(union, 1)


def gt_masks(record: dict) -> np.ndarray:
    return np.stack([mask_utils.decode(a["segmentation"]) > 0 for a in record["annotations"]])


def box_prompt_ious(model, cfg, dataset: str) -> list[float]:
    """Mask IoU of every annotation, prompted with its own box."""
    loader = SCATrainer.build_test_loader(cfg, dataset)
    records = {d["image_id"]: d for d in DatasetCatalog.get(dataset)}
    ious = []
    with torch.no_grad():
        for batch in loader:
            for x, out in zip(batch, model(batch)):
                pred = out["instances"].pred_masks.cpu().numpy()
                gt = gt_masks(records[x["image_id"]])
                ious += np.diag(mask_iou(pred, gt)).tolist()
    return ious


def anything_recovery(model, cfg, dataset: str, recovery_iou: float) -> dict:
    """Recovered annotations and exactly right captions among them, in anything mode."""
    loader = SCATrainer.build_test_loader(cfg, dataset)
    records = {d["image_id"]: d for d in DatasetCatalog.get(dataset)}
    found_regions = recovered = right = total = 0
    with torch.no_grad():
        for batch in loader:
            for x, out in zip(batch, model(batch)):
                inst = out["instances"].to("cpu")
                record = records[x["image_id"]]
                gt = gt_masks(record)
                total += len(gt)
                found_regions += len(inst)
                if not len(inst):
                    continue
                iou = mask_iou(inst.pred_masks.numpy(), gt)
                best = iou.argmax(axis=0)
                for j, ann in enumerate(record["annotations"]):
                    if iou[best[j], j] >= recovery_iou:
                        recovered += 1
                        caption = _norm(inst.pred_captions[best[j]])
                        right += caption in {_norm(c) for c in ann["captions"]}
    return {
        "annotations": total,
        "found_regions": found_regions,
        "recovered": recovered,
        "recovered_fraction": recovered / max(total, 1),
        "right_captions": right,
        "right_caption_fraction_of_recovered": right / max(recovered, 1),
    }


def _norm(caption: str) -> str:
    return " ".join(caption.lower().split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--dataset", default="")
    parser.add_argument("--recovery-iou", type=float, default=0.75)
    parser.add_argument("--skip-boxes", action="store_true", help="anything mode only")
    parser.add_argument("--skip-anything", action="store_true", help="box prompts only")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args()
    cfg = get_cfg()
    sca.add_sca_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    dataset = args.dataset or cfg.DATASETS.TEST[0]
    model = SCATrainer.build_model(cfg).eval()
    SCACheckpointer(model).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
    results = {"dataset": dataset}
    if not args.skip_boxes:
        model.proposal_source = "gt"  # the mapper's proposals: the annotations' boxes
        ious = box_prompt_ious(model, cfg, dataset)
        results["box_prompts"] = {"regions": len(ious), "mean_mask_iou": float(np.mean(ious))}
    if not args.skip_anything:
        model.proposal_source = "anything"
        results["anything"] = {
            "recovery_iou": args.recovery_iou,
            **anything_recovery(model, cfg, dataset, args.recovery_iou),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
