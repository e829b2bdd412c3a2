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
from detectron2.utils import comm

from .dataset_mapper import SCADatasetMapper
from .stream import ResumableTrainingStream

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

    Samples come from a :class:`ResumableTrainingStream` seeded with ``cfg.SEED`` (a shared random
    seed when negative): uniform over the concatenated sets when ``DATASETS.TRAIN_RATIOS`` is
    empty (each set in proportion to its size), otherwise set ``i`` with probability
    ``TRAIN_RATIOS[i] / sum(TRAIN_RATIOS)``. ``loader.dataset`` is the stream; set its ``start``
    to resume.
    """
    names = list(cfg.DATASETS.TRAIN)
    per_set = [
        get_detection_dataset_dicts([n], filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS)
        for n in names
    ]
    ratios = list(cfg.DATASETS.TRAIN_RATIOS)
    weights = None
    if ratios:
        weights = mixing_weights([len(d) for d in per_set], ratios)
        logger.info(
            "Mixing %s with ratios %s (%s images)", names, ratios, [len(d) for d in per_set]
        )
    seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
    stream = ResumableTrainingStream(
        [d for dataset in per_set for d in dataset],
        mapper if mapper is not None else SCADatasetMapper(cfg, True),
        seed,
        weights,
    )
    return build_detection_train_loader(
        dataset=stream,
        mapper=None,
        total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
        aspect_ratio_grouping=False,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )


def build_sca_test_loader(cfg: CfgNode, dataset_name: str, mapper: Callable | None = None):
    """Detectron2's test loader over one data set with :class:`SCADatasetMapper` in test mode."""
    return build_detection_test_loader(
        cfg,
        dataset_name,
        mapper=mapper if mapper is not None else SCADatasetMapper(cfg, False),
        batch_size=cfg.TEST.SCA.IMS_PER_BATCH,
    )
