"""Train and test data loaders, with several training sets mixed by sampling ratios."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from detectron2.config import CfgNode
from detectron2.data import (
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from detectron2.data.samplers import TrainingSampler

from .dataset_mapper import SCADatasetMapper
from .samplers import WeightedInfiniteSampler

logger = logging.getLogger(__name__)


def mixing_weights(sizes: list[int], ratios: list[float]) -> torch.Tensor:
    """Per-sample weights so that data set ``i`` is drawn with probability ``ratios[i] / sum``."""
    if len(ratios) != len(sizes):
        raise ValueError(
            f"DATASETS.TRAIN_RATIOS has {len(ratios)} entries for {len(sizes)} DATASETS.TRAIN "
            "data sets: give one ratio per data set, or none (proportional to size)"
        )
    if any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(
            f"DATASETS.TRAIN_RATIOS must be non-negative with a positive sum: {ratios}"
        )
    total = float(sum(ratios))
    return torch.cat(
        [torch.full((n,), r / total / n, dtype=torch.float64) for n, r in zip(sizes, ratios)]
    )


def build_sca_train_loader(cfg: CfgNode, mapper: Callable | None = None):
    """Detectron2's train loader over ``DATASETS.TRAIN`` with :class:`SCADatasetMapper`.

    With ``DATASETS.TRAIN_RATIOS`` empty the sets are concatenated and shuffled (each set sampled in
    proportion to its size); otherwise a :class:`WeightedInfiniteSampler` seeded with ``cfg.SEED``
    (when >= 0) draws set ``i`` with probability ``TRAIN_RATIOS[i] / sum(TRAIN_RATIOS)``.
    """
    names = list(cfg.DATASETS.TRAIN)
    per_set = [
        get_detection_dataset_dicts([n], filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS)
        for n in names
    ]
    dicts = [d for dataset in per_set for d in dataset]
    seed = cfg.SEED if cfg.SEED >= 0 else None
    ratios = list(cfg.DATASETS.TRAIN_RATIOS)
    if ratios:
        sampler = WeightedInfiniteSampler(mixing_weights([len(d) for d in per_set], ratios), seed)
        logger.info(
            "Mixing %s with ratios %s (%s images)", names, ratios, [len(d) for d in per_set]
        )
    else:
        sampler = TrainingSampler(len(dicts), seed=seed)
    return build_detection_train_loader(
        cfg,
        mapper=mapper if mapper is not None else SCADatasetMapper(cfg, True),
        dataset=dicts,
        sampler=sampler,
    )


def build_sca_test_loader(cfg: CfgNode, dataset_name: str, mapper: Callable | None = None):
    """Detectron2's test loader over one data set with :class:`SCADatasetMapper` in test mode."""
    return build_detection_test_loader(
        cfg,
        dataset_name,
        mapper=mapper if mapper is not None else SCADatasetMapper(cfg, False),
        batch_size=cfg.TEST.SCA.IMS_PER_BATCH,
    )
