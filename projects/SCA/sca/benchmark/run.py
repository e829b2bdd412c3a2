"""One benchmark run: the sections of ``settings`` in order, into one report."""

from __future__ import annotations

import dataclasses

import torch
from detectron2.config import CfgNode

from .captions import bench_captions
from .densecap import bench_densecap
from .inference import bench_anything, bench_inference
from .report import environment
from .settings import BenchmarkSettings, benchmark_cfg, build_random_lm_model
from .training import bench_training


def _inference_sections(cfg: CfgNode, settings: BenchmarkSettings, device: torch.device) -> dict:
    """The inference variants and anything mode on one model, freed on return."""
    model = build_random_lm_model(cfg, settings.lm)
    out = {"inference": bench_inference(model, cfg, settings, device)}
    if "anything" in settings.sections:
        out["anything"] = bench_anything(model, cfg, settings, device)
    return out


def run_benchmark(settings: BenchmarkSettings) -> dict:
    """The report: ``environment``, ``settings``, ``inference`` and ``training`` (by variant,
    empty when not asked for), and ``anything``, ``densecap_eval`` and ``captions`` when asked
    for. Random weights are drawn from seed 0."""
    torch.manual_seed(0)
    cfg = benchmark_cfg(settings)
    device = torch.device(settings.device)
    sections = set(settings.sections)
    report: dict = {"environment": environment(device), "settings": dataclasses.asdict(settings)}
    report["inference"] = {}
    if {"encoder", "end_to_end", "anything"} & sections:
        report.update(_inference_sections(cfg, settings, device))
    report["training"] = bench_training(cfg, settings, device) if "training" in sections else {}
    if "densecap_eval" in sections:
        report["densecap_eval"] = bench_densecap(settings.smoke)
    if "captions" in sections:
        report["captions"] = bench_captions(cfg, settings)
    return report
