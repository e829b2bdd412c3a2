"""Inference sections: the image encoder per image, one image with N box prompts end to end
(greedy and beam search) under each inference variant, and anything mode per image."""

from __future__ import annotations

from functools import partial

import torch
from detectron2.config import CfgNode

from ..modeling.anything import AnythingGenerator, AnythingParams
from ..modeling.precision import inference_autocast
from .inputs import image_input, with_proposals
from .measure import timed
from .profiling import print_profile, sync_points
from .settings import BenchmarkSettings
from .variants import VARIANTS, set_inference_variant


def bench_encoder(
    model: torch.nn.Module, x: dict, settings: BenchmarkSettings, device: torch.device
) -> dict:
    """The image encoder's time per image."""

    def encode():
        with inference_autocast(device, model.inference_autocast):
            return model.image_embeddings([x])

    return timed(encode, device, settings.repeats, settings.warmup)[0]


def bench_end_to_end(
    model: torch.nn.Module,
    x: dict,
    settings: BenchmarkSettings,
    device: torch.device,
    variant_name: str,
) -> dict:
    """One image with each of ``settings.regions`` box prompts, greedy and with
    ``settings.beams`` beams; the greedy rows keep their captions, the largest one its profile
    and sync points."""
    gen = model.roi_heads.generation_config
    rows = {}
    for n in settings.regions:
        inputs = [with_proposals(x, n, seed=n)]
        for beams in sorted({1, settings.beams}):
            gen.num_beams = beams
            r, outputs = timed(partial(model, inputs), device, settings.repeats, settings.warmup)
            r["tokens_per_s"] = round(n * settings.tokens / (r["ms"] / 1000), 1)
            if beams == 1:
                r["captions"] = list(outputs[0]["instances"].pred_captions)
                if settings.profile and n == max(settings.regions):
                    print_profile(partial(model, inputs), device, variant_name)
                if settings.sync_debug and n == max(settings.regions):
                    r["sync_points"] = sync_points(partial(model, inputs), device)
            rows[f"{n}_regions_{'greedy' if beams == 1 else f'beam{beams}'}"] = r
        gen.num_beams = 1
    lo, hi = min(settings.regions), max(settings.regions)
    if hi > lo:
        t = {k: rows[f"{k}_regions_greedy"]["ms"] for k in (lo, hi)}
        rows["ms_per_extra_region"] = round((t[hi] - t[lo]) / (hi - lo), 2)
    return rows


def bench_inference(
    model: torch.nn.Module, cfg: CfgNode, settings: BenchmarkSettings, device: torch.device
) -> dict:
    """The encoder and end-to-end sections under each of ``settings.variants`` on the same
    weights, with the fraction of the largest run's captions equal to the first variant's. A
    variant that fails (e.g. a cache this LM does not support) reports its error."""
    out: dict = {}
    first_captions = None
    for name in settings.variants:
        set_inference_variant(model, VARIANTS[name], cfg)
        x = image_input(cfg, device)
        res: dict = {}
        try:
            with torch.no_grad():
                if "encoder" in settings.sections:
                    res["encoder"] = bench_encoder(model, x, settings, device)
                if "end_to_end" in settings.sections:
                    res["end_to_end"] = bench_end_to_end(model, x, settings, device, name)
        except Exception as e:
            out[name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        largest = res.get("end_to_end", {}).get(f"{max(settings.regions)}_regions_greedy")
        if largest is not None:
            captions = largest["captions"]
            first_captions = first_captions or captions
            same = sum(a == b for a, b in zip(captions, first_captions))
            res["captions_equal_to_first"] = round(same / len(captions), 4)
        out[name] = res
    return out


def bench_anything(
    model: torch.nn.Module, cfg: CfgNode, settings: BenchmarkSettings, device: torch.device
) -> dict:
    """Anything mode on one image under the first inference variant: time and regions found."""
    set_inference_variant(model, VARIANTS[settings.variants[0]], cfg)
    image = image_input(cfg, torch.device("cpu"))["image"].permute(1, 2, 0).numpy()
    generator = AnythingGenerator(model, AnythingParams.from_config(cfg))
    r, regions = timed(
        partial(generator.generate, image), device, settings.repeats, settings.warmup
    )
    return {"available": True, **r, "regions": len(regions)}
