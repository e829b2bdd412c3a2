"""Captions section: the configured (trained) model on a test set under each inference variant:
time, exact match against the references, and how many captions equal the first variant's."""

from __future__ import annotations

import time

import torch
from detectron2.config import CfgNode
from detectron2.utils.env import seed_all_rng

from ..checkpoint import SCACheckpointer
from ..data import build_sca_test_loader
from ..evaluation import normalize_caption
from ..evaluation.dataset_gt import annotation_references, dataset_index
from ..modeling import build_sca_model
from .settings import BenchmarkSettings
from .variants import VARIANTS, set_inference_variant


def bench_captions(cfg: CfgNode, settings: BenchmarkSettings) -> dict:
    """Needs ``settings.dataset`` and ``MODEL.WEIGHTS``; reported as unavailable without them."""
    if not (settings.dataset and cfg.MODEL.WEIGHTS):
        return {
            "available": False,
            "reason": "needs --dataset and MODEL.WEIGHTS (a trained model)",
        }
    # as tools/train_net.py does: frozen parts that no checkpoint holds (e.g. a SAM decoder left
    # at random values where SAM has no weights) are rebuilt from the config's seed
    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED)
    model = build_sca_model(cfg).eval()
    SCACheckpointer(model).load(cfg.MODEL.WEIGHTS)
    batches = list(build_sca_test_loader(cfg, settings.dataset))
    index = dataset_index(settings.dataset)
    refs = [
        {normalize_caption(r) for r in annotation_references(a, x["image_id"])}
        for b in batches
        for x in b
        for a in index[x["image_id"]]["annotations"]
    ]
    out, first = {}, None
    for name in settings.variants:
        set_inference_variant(model, VARIANTS[name], cfg)
        start = time.perf_counter()
        try:
            with torch.no_grad():
                preds = [
                    normalize_caption(c)
                    for b in batches
                    for y in model(b)
                    for c in y["instances"].pred_captions
                ]
        except Exception as e:  # report, go on with the next variant
            out[name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        first = first or preds
        same = sum(p == q for p, q in zip(preds, first))
        out[name] = {
            "s": round(time.perf_counter() - start, 2),
            "regions": len(preds),
            "exact_match": round(sum(p in r for p, r in zip(preds, refs)) / len(refs), 4),
            "captions_equal_to_first": round(same / len(preds), 4),
        }
    return {"available": True, "dataset": settings.dataset, "variants": out}
