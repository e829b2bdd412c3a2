"""Anything mode evaluated after the box-prompt evaluation (``MODEL.SCA.ANYTHING.EVALUATE``)."""

import logging
import os
from collections import OrderedDict
from collections.abc import Callable

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from torch import nn

from ..evaluation import build_anything_evaluator
from ..modeling.prompt_sources import build_prompt_source
from .visualize import save_visualizations

logger = logging.getLogger(__name__)


def evaluate_anything(
    cfg: CfgNode, model: nn.Module, build_test_loader: Callable[[CfgNode, str], object]
) -> OrderedDict:
    """The model in anything mode (MODEL.SCA.ANYTHING.*) on each DATASETS.TEST data set whose
    annotations have masks, scored by :class:`~sca.evaluation.AnythingEvaluator` (written to
    inference/<name>/anything), with MODEL.SCA.ANYTHING.EVAL_NUM_VIS_IMAGES pictures in
    visualizations/<name>_anything. Returns ``{dataset name: results}``. The model's prompt
    source is swapped for the run and restored afterwards, also on error."""
    net = model.module if hasattr(model, "module") else model
    saved = net.prompt_source
    net.prompt_source = build_prompt_source(cfg, "anything")
    results = OrderedDict()
    try:
        for name in cfg.DATASETS.TEST:
            records = DatasetCatalog.get(name)
            if not all("segmentation" in a for r in records for a in r["annotations"]):
                logger.info("%s: anything mode needs masks: skipped", name)
                continue
            folder = os.path.join(cfg.OUTPUT_DIR, "inference", name, "anything")
            evaluator = build_anything_evaluator(cfg, name, folder)
            results[name] = inference_on_dataset(model, build_test_loader(cfg, name), evaluator)
            if comm.is_main_process():
                logger.info("anything mode on %s:", name)
                print_csv_format(results[name])
            vis = cfg.MODEL.SCA.ANYTHING.EVAL_NUM_VIS_IMAGES
            if vis > 0 and comm.is_main_process():
                vis_cfg = cfg.clone()
                vis_cfg.defrost()
                vis_cfg.TEST.SCA.NUM_VIS_IMAGES = vis
                folder = os.path.join(cfg.OUTPUT_DIR, "visualizations", f"{name}_anything")
                save_visualizations(vis_cfg, net, name, folder)
    finally:
        net.prompt_source = saved
    return results
