#!/usr/bin/env python
"""Quality of a trained model's masks on a data set whose annotations carry masks.

    python tools/mask_quality.py --config-file configs/sca_demo_dense.yaml \\
        MODEL.WEIGHTS output/sca_demo_dense/model_final.pth

Box prompts: each annotation's box prompts the model; the mean mask IoU with the annotation's
mask is reported. Prints JSON.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--dataset", default="")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args()
    cfg = get_cfg()
    sca.add_sca_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.MODEL.SCA.PROPOSAL_SOURCE = "gt"  # the mapper's proposals: the annotations' boxes
    cfg.freeze()
    dataset = args.dataset or cfg.DATASETS.TEST[0]
    model = SCATrainer.build_model(cfg).eval()
    SCACheckpointer(model).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
    ious = box_prompt_ious(model, cfg, dataset)
    results = {
        "dataset": dataset,
        "box_prompts": {"regions": len(ious), "mean_mask_iou": float(np.mean(ious))},
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
