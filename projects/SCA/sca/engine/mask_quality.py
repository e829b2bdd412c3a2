"""A trained model's masks on a data set whose annotations carry masks: box-prompt mask IoU and
anything mode's recovery of the annotations (see :mod:`sca.evaluation.mask_quality`)."""

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog
from torch import nn

from ..checkpoint import SCACheckpointer
from ..evaluation.mask_quality import RecoveryCounts, gt_masks, mask_iou
from ..modeling.prompt_sources import build_prompt_source
from .trainer import SCATrainer


def box_prompt_ious(model: nn.Module, cfg: CfgNode, dataset: str) -> list[float]:
    """Mask IoU of every annotation of ``dataset``, prompted with its own box."""
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


def anything_recovery(
    model: nn.Module, cfg: CfgNode, dataset: str, recovery_iou: float
) -> RecoveryCounts:
    """The annotations of ``dataset`` that the model's regions recover, in its current mode."""
    loader = SCATrainer.build_test_loader(cfg, dataset)
    records = {d["image_id"]: d for d in DatasetCatalog.get(dataset)}
    counts = RecoveryCounts(recovery_iou)
    with torch.no_grad():
        for batch in loader:
            for x, out in zip(batch, model(batch)):
                inst = out["instances"].to("cpu")
                counts.add(inst.pred_masks.numpy(), inst.pred_captions, records[x["image_id"]])
    return counts


def mask_quality(
    cfg: CfgNode,
    dataset: str = "",
    recovery_iou: float = 0.75,
    box_prompts: bool = True,
    anything: bool = True,
) -> dict:
    """The model of ``cfg`` (MODEL.WEIGHTS loaded) on ``dataset`` (default DATASETS.TEST[0]):
    with ``box_prompts``, each annotation's box prompts the model and the mean mask IoU is
    reported; with ``anything``, the regions of anything mode (MODEL.SCA.ANYTHING.*) are matched
    to the annotations (:class:`~sca.evaluation.mask_quality.RecoveryCounts`)."""
    dataset = dataset or cfg.DATASETS.TEST[0]
    model = SCATrainer.build_model(cfg).eval()
    SCACheckpointer(model).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
    results = {"dataset": dataset}
    if box_prompts:
        model.prompt_source = build_prompt_source(cfg, "gt")  # the annotations' boxes
        ious = box_prompt_ious(model, cfg, dataset)
        results["box_prompts"] = {"regions": len(ious), "mean_mask_iou": float(np.mean(ious))}
    if anything:
        model.prompt_source = build_prompt_source(cfg, "anything")
        counts = anything_recovery(model, cfg, dataset, recovery_iou)
        results["anything"] = {"recovery_iou": recovery_iou, **counts.summary()}
    return results
