"""The model of a batch job and the loop that captions one process's images into its shard."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from detectron2.config import CfgNode
from detectron2.utils.env import seed_all_rng
from torch import nn
from tqdm import tqdm

from ...checkpoint import SCACheckpointer
from ...modeling import build_sca_model
from .loader import Loaded
from .records import image_record, skipped_record
from .shards import ShardWriter

logger = logging.getLogger(__name__)


@dataclass
class RunStats:
    """What one process did in this run."""

    images: int = 0
    skipped: int = 0
    regions: int = 0
    seconds: float = 0.0


def load_model(cfg: CfgNode, prompt_source: str) -> nn.Module:
    """The model of ``cfg`` in eval mode with ``MODEL.WEIGHTS``, prompted by ``prompt_source``
    ("anything" or "gt": the inputs' boxes). Parameters that no checkpoint covers are drawn
    from ``SEED`` (0 when negative), so that every process and every rerun holds the same model."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.SCA.PROPOSAL_SOURCE = prompt_source
    seed_all_rng(cfg.SEED if cfg.SEED >= 0 else 0)
    model = build_sca_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        SCACheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return model


@torch.no_grad()
def caption_items(
    model: nn.Module, batches, writer: ShardWriter, total: int, show_progress: bool
) -> RunStats:
    """Captions each batch of :class:`Loaded` items, one shard line per image as it is done."""
    stats = RunStats()
    start = time.perf_counter()
    bar = tqdm(total=total, unit="img", disable=not show_progress, dynamic_ncols=True)
    for batch in batches:
        ready: list[Loaded] = []
        for loaded in batch:
            if loaded.skip_reason is None:
                ready.append(loaded)
                continue
            logger.warning("Skipped %s: %s", loaded.item.key, loaded.skip_reason)
            writer.write(skipped_record(loaded.item.key, loaded.skip_reason))
            stats.skipped += 1
        outputs = model.inference([x.inputs for x in ready]) if ready else []
        for loaded, output in zip(ready, outputs):
            instances = output["instances"]
            writer.write(image_record(loaded.item.key, loaded.height, loaded.width, instances))
            stats.images += 1
            stats.regions += len(instances)
        bar.update(len(batch))
        elapsed = time.perf_counter() - start
        bar.set_postfix(regions_per_s=f"{stats.regions / max(elapsed, 1e-9):.1f}", refresh=False)
    bar.close()
    stats.seconds = time.perf_counter() - start
    return stats
