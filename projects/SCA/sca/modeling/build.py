"""``build_sca_model``: Detectron2's ``build_model`` with an LM given instead of loaded."""

import logging

import torch
from detectron2.config import CfgNode
from detectron2.modeling import META_ARCH_REGISTRY, build_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


def build_sca_model(
    cfg: CfgNode,
    language_model: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None,
) -> torch.nn.Module:
    """The model of ``cfg`` on ``MODEL.DEVICE``. ``language_model`` (model, tokenizer), e.g. a
    random LM of some shape for benchmarks or a tiny one for tests, replaces the LM that
    ``MODEL.SCA.LM`` names; without it this is ``detectron2.modeling.build_model``."""
    if language_model is None:
        return build_model(cfg)
    model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg, language_model=language_model)
    model.to(torch.device(cfg.MODEL.DEVICE))
    logger.info("Model:\n%s", model)
    return model
