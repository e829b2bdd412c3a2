"""Choose SCA's evaluators for a data set from its metadata ``evaluator_type``."""

from __future__ import annotations

import logging

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluators

from .anything_evaluator import AnythingEvaluator
from .densecap_evaluator import DenseCaptionEvaluator
from .region_caption_evaluator import RegionCaptionEvaluator

logger = logging.getLogger(__name__)

EVALUATOR_TYPES = ("dense_caption", "region_caption")


def build_sca_evaluator(
    cfg: CfgNode, dataset_name: str, output_folder: str | None
) -> DatasetEvaluators:
    """Evaluators of ``dataset_name``:

    * ``region_caption``: :class:`RegionCaptionEvaluator` (caption metrics with GT-box prompts);
    * ``dense_caption``: :class:`DenseCaptionEvaluator` (DenseCap mAP), plus the region-caption
      evaluator when the model is prompted with the ground-truth boxes
      (``MODEL.SCA.PROPOSAL_SOURCE == "gt"``; other proposals do not align with the annotations).
    """
    evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type", None)
    if evaluator_type not in EVALUATOR_TYPES:
        raise ValueError(
            f"data set {dataset_name!r} has metadata evaluator_type={evaluator_type!r}; SCA's "
            f"evaluators need one of {EVALUATOR_TYPES}"
        )
    test = cfg.TEST.SCA
    region = RegionCaptionEvaluator(
        dataset_name,
        output_folder,
        distributed=True,
        spice=test.SPICE,
        pos_recall=test.POS_RECALL,
        spacy_model=test.POS_RECALL_SPACY_MODEL,
    )
    if evaluator_type == "region_caption":
        return DatasetEvaluators([region])
    evaluators = [
        DenseCaptionEvaluator(
            dataset_name,
            output_folder,
            distributed=True,
            last_target_quirk=test.DENSECAP_LAST_TARGET_QUIRK,
            score_field=test.DENSECAP_SCORE_FIELD,
        )
    ]
    source = cfg.MODEL.SCA.get("PROPOSAL_SOURCE", "gt")
    if source == "gt":
        evaluators.append(region)
    else:
        logger.info("%s: region-caption metrics skipped (proposals from %r)", dataset_name, source)
    return DatasetEvaluators(evaluators)


def build_anything_evaluator(
    cfg: CfgNode, dataset_name: str, output_folder: str | None
) -> AnythingEvaluator:
    """:class:`AnythingEvaluator` of ``dataset_name`` (MODEL.SCA.ANYTHING.EVAL_RECOVERY_IOU; the
    DenseCap mAP with TEST.SCA.DENSECAP_LAST_TARGET_QUIRK), for a model in anything mode."""
    return AnythingEvaluator(
        dataset_name,
        output_folder,
        distributed=True,
        recovery_iou=cfg.MODEL.SCA.ANYTHING.EVAL_RECOVERY_IOU,
        last_target_quirk=cfg.TEST.SCA.DENSECAP_LAST_TARGET_QUIRK,
    )
