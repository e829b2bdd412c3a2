"""Training section: one iteration (forward, backward, optimizer step) under each training
variant, through Detectron2's SimpleTrainer or AMPTrainer."""

from __future__ import annotations

import itertools

import torch
from detectron2.config import CfgNode
from detectron2.engine import AMPTrainer, SimpleTrainer
from detectron2.utils.events import EventStorage

from ..engine.optim import build_sca_optimizer
from .inputs import training_batch
from .measure import timed
from .profiling import print_profile, sync_points
from .settings import BenchmarkSettings, build_random_lm_model
from .variants import TRAIN_VARIANTS, store_frozen_parts


def bench_training_step(
    cfg: CfgNode, settings: BenchmarkSettings, device: torch.device, name: str
) -> dict:
    """One training iteration of a fresh model under the training variant ``name``."""
    variant = TRAIN_VARIANTS[name]
    cfg = cfg.clone()
    cfg.MODEL.SCA.MIXER.ACTIVATION_CHECKPOINTING = variant.get("checkpointing", False)
    cfg.MODEL.SCA.MIXER.COMPILE = variant.get("compile", False)
    cfg.MODEL.SCA.SAM.ENCODER_CUDA_GRAPH = variant.get("encoder_graph", False)
    model = build_random_lm_model(cfg, settings.lm).train()
    if "frozen_dtype" in variant:
        store_frozen_parts(model, variant["frozen_dtype"])
    batch = training_batch(cfg, settings.train_images, settings.train_regions, device)
    optimizer = build_sca_optimizer(cfg, model)
    data = itertools.repeat(batch)
    amp = variant.get("amp")
    if amp is not None and device.type != "cuda":
        return {"available": False, "reason": "Detectron2's AMPTrainer needs CUDA"}
    trainer = (
        AMPTrainer(model, data, optimizer, precision=amp)
        if amp is not None
        else SimpleTrainer(model, data, optimizer)
    )
    with EventStorage():
        r, _ = timed(trainer.run_step, device, settings.repeats, settings.warmup)
        if settings.profile:
            print_profile(trainer.run_step, device, f"training {name}")
        if settings.sync_debug:
            r["sync_points"] = sync_points(trainer.run_step, device)
    r["regions_per_step"] = settings.train_images * settings.train_regions
    return r


def bench_training(cfg: CfgNode, settings: BenchmarkSettings, device: torch.device) -> dict:
    """A training step under each of ``settings.train_variants``; a variant that fails reports
    its error."""
    out = {}
    for name in settings.train_variants:
        try:
            out[name] = bench_training_step(cfg, settings, device, name)
        except Exception as e:
            out[name] = {"available": False, "error": f"{type(e).__name__}: {e}"}
    return out
