#!/usr/bin/env python
"""Benchmark SCA on CPU or CUDA with random weights of any shape (no downloads), in the manner of
Detectron2's tools/benchmark.py. Prints a table and writes JSON.

    python tools/benchmark.py --config-file configs/sca_vg.yaml --lm gpt2-large --device cuda
    python tools/benchmark.py --config-file configs/sca_vg.yaml --encoder vit_b --lm gpt2 \\
        --regions 1 64 --repeats 1 --sections encoder end_to_end
    python tools/benchmark.py --smoke --json out.json      # seconds; what the tests run

Sections: ``encoder`` (image-encoder time per image), ``end_to_end`` (one image with N box prompts,
exactly ``--tokens`` greedy tokens per region (MIN_NEW_TOKENS = MAX_NEW_TOKENS), and beam search),
``anything`` (anything mode per image, when this build has it), ``training`` (one iteration,
forward + backward + optimizer step, ``--train-images`` x ``--train-regions``), ``densecap_eval``
(tools/benchmark_densecap_eval.py's synthetic DenseCap evaluation). Each timing is the median of
``--repeats`` runs after one warm-up, with peak memory (RSS sampled every 5 ms; CUDA max
allocated). Inference runs once per ``--variants`` entry (precision and attention switches) on the
same weights, and reports how many captions match the first variant's; training runs once per
``--train-variants`` entry. Trailing ``KEY VALUE`` pairs override the config.
"""

# ruff: noqa: E402  (the restart below comes before the heavy imports)
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import statistics
import sys
import threading
import time
from functools import partial
from pathlib import Path
from unittest import mock

if __name__ == "__main__":  # as tools/train_net.py: the allocator is chosen before torch loads
    from cpu_malloc import restart_with_jemalloc

    restart_with_jemalloc()

import numpy as np
import torch
import transformers
from detectron2.config import CfgNode, get_cfg
from detectron2.engine import AMPTrainer, SimpleTrainer
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

import sca
from sca.engine.optim import build_sca_optimizer
from sca.modeling.cuda_graph import CUDAGraphForward
from sca.modeling.fast_attention import use_reference_attention, use_sdpa_attention
from sca.modeling.precision import inference_autocast

# Random LMs by shape: transformers config class and arguments.
LM_SHAPES = {
    "gpt2": (GPT2Config, {}),  # 124M
    "gpt2-large": (GPT2Config, {"n_embd": 1280, "n_layer": 36, "n_head": 20}),  # 774M
    "llama-3b": (  # OpenLLaMA-3B's shape
        LlamaConfig,
        {
            "vocab_size": 32000,
            "hidden_size": 3200,
            "intermediate_size": 8640,
            "num_hidden_layers": 26,
            "num_attention_heads": 32,
            "max_position_embeddings": 2048,
        },
    ),
    "tiny-gpt2": (GPT2Config, {"vocab_size": 500, "n_embd": 64, "n_layer": 2, "n_head": 2}),
    "tiny-llama": (
        LlamaConfig,
        {
            "vocab_size": 500,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
        },
    ),
}
LM_CLASSES = {GPT2Config: GPT2LMHeadModel, LlamaConfig: LlamaForCausalLM}

# Inference variants: attention implementation, autocast, KV cache, and whole-model dtype.
VARIANTS = {
    "fp32-eager": {"sdpa": False},
    "fp32": {},
    "fp32-static": {"cache": "static"},
    "fp32-graph": {"encoder_graph": True},
    "bf16-autocast": {"autocast": "bfloat16"},
    "fp16-autocast": {"autocast": "float16"},
    "bf16-autocast-static": {"autocast": "bfloat16", "cache": "static"},
    "bf16-frozen": {"frozen_dtype": torch.bfloat16},
    "bf16-frozen-static": {"frozen_dtype": torch.bfloat16, "cache": "static"},
    "bf16-frozen-autocast-static": {
        "frozen_dtype": torch.bfloat16,
        "autocast": "bfloat16",
        "cache": "static",
    },
    "bf16-model": {"model_dtype": torch.bfloat16},
    "bf16-model-static": {"model_dtype": torch.bfloat16, "cache": "static"},
    "bf16-model-static-graph": {
        "model_dtype": torch.bfloat16,
        "cache": "static",
        "encoder_graph": True,
    },
}
# Training variants: AMP dtype, mixer activation checkpointing, torch.compile of the mixer, the
# frozen encoder as a CUDA graph.
TRAIN_VARIANTS = {
    "fp32": {},
    "fp32-ckpt": {"checkpointing": True},
    "fp16-amp": {"amp": torch.float16},
    "bf16-amp": {"amp": torch.bfloat16},
    "fp16-amp-frozen16": {"amp": torch.float16, "frozen_dtype": torch.float16},
    "fp16-amp-compile": {"amp": torch.float16, "compile": True},
    "fp16-amp-graph": {"amp": torch.float16, "encoder_graph": True},
    "fp16-amp-compile-graph": {"amp": torch.float16, "compile": True, "encoder_graph": True},
    "fp32-compile": {"compile": True},
}
SECTIONS = ("encoder", "end_to_end", "anything", "training", "densecap_eval", "captions")
IMAGE_HW = (768, 1024)  # a 600x800 photo resized to SAM's longest side 1024


def random_lm(shape: str) -> tuple[torch.nn.Module, PreTrainedTokenizerFast]:
    """A randomly initialised LM of a named shape and a word-level tokenizer of its vocabulary."""
    config_cls, kwargs = LM_SHAPES[shape]
    eos = kwargs.get("vocab_size", 50257) - 1  # GPT-2's vocabulary unless given
    config = config_cls(**kwargs, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    vocab = {f"w{i}": i for i in range(eos)}
    vocab["<eos>"] = eos
    tok = Tokenizer(models.WordLevel(vocab))  # no unknown token: every id decodes to a word
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")
    return LM_CLASSES[config_cls](config).eval(), tokenizer


def build_cfg(args: argparse.Namespace) -> CfgNode:
    cfg = get_cfg()
    sca.add_sca_config(cfg)
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    cfg.MODEL.DEVICE = args.device
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.SCA.SAM.CHECKPOINT = ""  # random weights of the configured shapes (or WEIGHTS)
    if args.encoder:
        cfg.MODEL.SCA.SAM.ENCODER = args.encoder
    if args.smoke:
        cfg.INPUT.IMAGE_SIZE = 64
        sam = cfg.MODEL.SCA.SAM
        sam.ENCODER, sam.EMBED_DIM, sam.DEPTH, sam.NUM_HEADS = "custom", 32, 2, 2
        sam.GLOBAL_ATTN_INDEXES, sam.WINDOW_SIZE = [1], 2
        sam.PROMPT_EMBED_DIM, sam.DECODER_MLP_DIM = 32, 64
        mixer = cfg.MODEL.SCA.MIXER
        mixer.DEPTH, mixer.NUM_HEADS, mixer.MLP_DIM = 2, 4, 64
        if "ANYTHING" in cfg.MODEL.SCA:  # anything mode, where this build has it
            cfg.MODEL.SCA.ANYTHING.POINTS_PER_SIDE = 4
    if not args.dataset:  # timing protocol: exactly --tokens new tokens per region
        cfg.MODEL.SCA.GENERATION.MAX_NEW_TOKENS = args.tokens
        cfg.MODEL.SCA.GENERATION.MIN_NEW_TOKENS = args.tokens
    cfg.merge_from_list(args.opts)
    return cfg


def build_sca(cfg: CfgNode, lm_shape: str) -> torch.nn.Module:
    """The configured model, with a random LM of ``lm_shape`` instead of a loaded one."""
    with torch.device(cfg.MODEL.DEVICE):  # random initialisation directly on the device
        lm, tokenizer = random_lm(lm_shape)
        with mock.patch("sca.modeling.caption_head.load_causal_lm", return_value=(lm, tokenizer)):
            return build_model(cfg).eval()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak resident memory (sampled) and CUDA max allocated memory inside a ``with`` block."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_rss = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:  # not Linux: the process-wide peak so far
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak_rss = max(self.peak_rss, self.rss())

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.peak_rss = self.rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, self.rss())

    def summary(self) -> dict:
        out = {"peak_rss_gb": round(self.peak_rss / 2**30, 3)}
        if self.device.type == "cuda":
            out["cuda_max_allocated_gb"] = round(
                torch.cuda.max_memory_allocated(self.device) / 2**30, 3
            )
        return out


def timed(fn, device: torch.device, repeats: int, warmup: int = 1) -> dict:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs, with memory."""
    with PeakMemory(device) as memory:
        for _ in range(warmup):
            fn()
        synchronize(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = fn()
            synchronize(device)
            times.append(time.perf_counter() - start)
    return {"ms": round(1000 * statistics.median(times), 2), **memory.summary(), "_result": result}


def profile(fn, device: torch.device, title: str, rows: int = 25) -> None:
    """Print the operators that took the most time in one call of ``fn``."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        fn()
        synchronize(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"---- profile: {title}")
    print(prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=50))


def sync_points(fn, device: torch.device) -> dict[str, int]:
    """Where one call of ``fn`` makes the CPU wait for the GPU (torch's sync debug mode): the
    innermost frame outside torch of each wait, with how often it waited there. A wait while
    work is queued leaves the GPU idle until the CPU has queued the next kernels."""
    if device.type != "cuda":
        return {}
    import collections
    import traceback
    import warnings

    found: collections.Counter = collections.Counter()

    def record(*_args, **_kwargs) -> None:
        frames = [
            f
            for f in traceback.extract_stack()[:-1]
            if "/torch/" not in f.filename and "warnings" not in f.filename
        ]
        f = frames[-1]
        found[f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.line}"] += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
            synchronize(device)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return dict(found.most_common())


def image_input(cfg: CfgNode, device: torch.device, seed: int = 0) -> dict:
    size = cfg.INPUT.IMAGE_SIZE
    h, w = (size * IMAGE_HW[0] // IMAGE_HW[1], size)
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
    return {"image": image.to(device), "height": h, "width": w}


def random_boxes(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8])
    wh = (0.05 + torch.rand(n, 2, generator=g) * 0.15) * torch.tensor([w, h])
    return torch.cat([xy, xy + wh], dim=1)


def with_proposals(x: dict, n: int, seed: int) -> dict:
    h, w = x["image"].shape[-2:]
    proposals = Instances((h, w))
    proposals.proposal_boxes = Boxes(random_boxes(n, h, w, seed).to(x["image"].device))
    return {**x, "proposals": proposals}


def training_batch(cfg: CfgNode, args, device: torch.device) -> list[dict]:
    batch = []
    words = [f"w{i}" for i in range(1, 200)]
    rng = np.random.default_rng(0)
    for i in range(args.train_images):
        x = image_input(cfg, device, seed=i)
        h, w = x["image"].shape[-2:]
        inst = Instances((h, w))
        inst.gt_boxes = Boxes(random_boxes(args.train_regions, h, w, seed=100 + i).to(device))
        inst.gt_captions = [
            " ".join(rng.choice(words, rng.integers(3, 12))) for _ in range(args.train_regions)
        ]
        batch.append({**x, "instances": inst})
    return batch


# ---- switches applied to a built model ----


def set_sdpa(model: torch.nn.Module, on: bool) -> None:
    """MODEL.SCA.SDPA_ATTENTION on or off: as built (the mixer's blocks folded) or
    segment_anything's attention everywhere."""
    if on:
        use_sdpa_attention(model)
        use_sdpa_attention(model.roi_heads.mixer, fold=True)
    else:
        use_reference_attention(model)


def store_frozen_parts(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """What MODEL.SCA.SAM.ENCODER_DTYPE / DECODER_DTYPE and LM.DTYPE do at build time."""
    heads = model.roi_heads
    for part in (model.backbone, heads.prompt_encoder, heads.mask_decoder, heads.captioner.lm):
        part.to(dtype)
    heads.prompt_encoder.pe_layer.float()


def set_inference_variant(model: torch.nn.Module, variant: dict, base_cfg: CfgNode) -> None:
    set_sdpa(model, variant.get("sdpa", base_cfg.MODEL.SCA.SDPA_ATTENTION))
    model.inference_autocast = variant.get("autocast", base_cfg.MODEL.SCA.INFERENCE_AUTOCAST)
    gen = model.roi_heads.generation_config
    gen.cache_implementation = variant.get("cache") or None
    graph = variant.get("encoder_graph", base_cfg.MODEL.SCA.SAM.ENCODER_CUDA_GRAPH)
    model.backbone.cuda_graph = CUDAGraphForward(model.backbone.image_encoder) if graph else None
    model.float()
    if "model_dtype" in variant:
        model.to(variant["model_dtype"])
    elif "frozen_dtype" in variant:
        store_frozen_parts(model, variant["frozen_dtype"])


# ---- sections ----


def bench_inference(model, cfg, args, device, variant_name: str) -> dict:
    out: dict = {}
    x = image_input(cfg, device)
    gen = model.roi_heads.generation_config
    with torch.no_grad():
        if "encoder" in args.sections:

            def encode():
                with inference_autocast(device, model.inference_autocast):
                    return model.image_embeddings([x])

            r = timed(encode, device, args.repeats, args.warmup)
            r.pop("_result")
            out["encoder"] = r
        if "end_to_end" in args.sections:
            rows = {}
            for n in args.regions:
                inputs = [with_proposals(x, n, seed=n)]
                for beams in sorted({1, args.beams}):
                    gen.num_beams = beams
                    r = timed(
                        lambda inputs=inputs: model(inputs), device, args.repeats, args.warmup
                    )
                    inst = r.pop("_result")[0]["instances"]
                    r["tokens_per_s"] = round(n * args.tokens / (r["ms"] / 1000), 1)
                    if beams == 1:
                        r["captions"] = list(inst.pred_captions)
                        run = partial(model, inputs)
                        if args.profile and n == max(args.regions):
                            profile(run, device, variant_name)
                        if args.sync_debug and n == max(args.regions):
                            r["sync_points"] = sync_points(run, device)
                    rows[f"{n}_regions_{'greedy' if beams == 1 else f'beam{beams}'}"] = r
                gen.num_beams = 1
            lo, hi = min(args.regions), max(args.regions)
            if hi > lo:
                t = {k: rows[f"{k}_regions_greedy"]["ms"] for k in (lo, hi)}
                rows["ms_per_extra_region"] = round((t[hi] - t[lo]) / (hi - lo), 2)
            out["end_to_end"] = rows
    return out


def bench_captions(cfg: CfgNode, args, device: torch.device) -> dict:
    """The configured (trained) model on a test set under each inference variant: time, exact
    match against the references, and how many captions equal the first variant's."""
    from detectron2.utils.env import seed_all_rng

    from sca.data import build_sca_test_loader
    from sca.engine import SCACheckpointer
    from sca.evaluation import normalize_caption
    from sca.evaluation.dataset_gt import annotation_references, dataset_index

    # as tools/train_net.py does: frozen parts that no checkpoint holds (e.g. a SAM decoder left
    # at random values where SAM has no weights) are rebuilt from the config's seed
    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED)
    model = build_model(cfg).eval()
    SCACheckpointer(model).load(cfg.MODEL.WEIGHTS)
    batches = list(build_sca_test_loader(cfg, args.dataset))
    index = dataset_index(args.dataset)
    refs = [
        {normalize_caption(r) for r in annotation_references(a, x["image_id"])}
        for b in batches
        for x in b
        for a in index[x["image_id"]]["annotations"]
    ]
    out, first = {}, None
    for name in args.variants:
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
    return {"available": True, "dataset": args.dataset, "variants": out}


def bench_anything(model, cfg, args, device) -> dict:
    try:
        from sca.modeling.anything import AnythingParams, segment_and_caption_anything
    except ImportError as e:
        return {"available": False, "reason": f"anything mode is not in this build ({e})"}
    image = image_input(cfg, torch.device("cpu"))["image"].permute(1, 2, 0).numpy()
    params = AnythingParams.from_config(cfg)
    r = timed(
        lambda: segment_and_caption_anything(model, image, params),
        device,
        args.repeats,
        args.warmup,
    )
    r["regions"] = len(r.pop("_result"))
    return {"available": True, **r}


def bench_training(cfg, args, device, name: str) -> dict:
    variant = TRAIN_VARIANTS[name]
    cfg = cfg.clone()
    cfg.MODEL.SCA.MIXER.ACTIVATION_CHECKPOINTING = variant.get("checkpointing", False)
    cfg.MODEL.SCA.MIXER.COMPILE = variant.get("compile", False)
    cfg.MODEL.SCA.SAM.ENCODER_CUDA_GRAPH = variant.get("encoder_graph", False)
    model = build_sca(cfg, args.lm).train()
    if "frozen_dtype" in variant:
        store_frozen_parts(model, variant["frozen_dtype"])
    batch = training_batch(cfg, args, device)
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
        r = timed(trainer.run_step, device, args.repeats, args.warmup)
        if args.profile:
            profile(trainer.run_step, device, f"training {name}")
        if args.sync_debug:
            r["sync_points"] = sync_points(trainer.run_step, device)
    r.pop("_result")
    r["regions_per_step"] = args.train_images * args.train_regions
    return r


def bench_densecap(args) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from benchmark_densecap_eval import TimedMeteor, make_data

        from sca.evaluation import evaluate_densecap

        meteor = TimedMeteor()
        meteor.scorer.score([("a red car", ["a red car"])])
    except Exception as e:  # no Java, or no METEOR: reported, not fatal
        return {"available": False, "reason": f"{type(e).__name__}: {e}"}
    images, preds = (20, 10) if args.smoke else (5000, 100)
    predictions, ground_truth = make_data(images, preds, 50 if not args.smoke else 5, seed=0)
    start = time.perf_counter()
    result = evaluate_densecap(predictions, ground_truth, meteor=meteor)
    total = time.perf_counter() - start
    return {
        "available": True,
        "images": images,
        "predictions_per_image": preds,
        "s": round(total, 2),
        "meteor_s": round(meteor.seconds, 2),
        "meteor_pairs": result["num_meteor_pairs"],
    }


def environment(device: torch.device) -> dict:
    env = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "malloc": "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "system",
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def print_table(report: dict) -> None:
    from tabulate import tabulate

    rows = []
    for variant, res in report["inference"].items():
        if "error" in res:
            rows.append([variant, res["error"][:60], "", "", ""])
        if "encoder" in res:
            rows.append([variant, "encoder / image", res["encoder"]["ms"], "", ""])
        for key, r in res.get("end_to_end", {}).items():
            if isinstance(r, dict):
                rows.append([variant, key, r["ms"], r["tokens_per_s"], r["peak_rss_gb"]])
            else:
                rows.append([variant, key, r, "", ""])
        if "captions_equal_to_first" in res:
            same = res["captions_equal_to_first"]
            rows.append([variant, "captions = first variant", same, "", ""])
    for variant, r in report["training"].items():
        if r.get("available", True):
            rows.append([variant, "training step", r["ms"], "", r["peak_rss_gb"]])
        else:
            rows.append([variant, r.get("error", r.get("reason", ""))[:60], "", "", ""])
    for variant, r in report.get("captions", {}).get("variants", {}).items():
        if "error" in r:
            rows.append([variant, r["error"][:60], "", "", ""])
            continue
        rows.append([variant, "test-set exact match", r["exact_match"], "", ""])
        rows.append([variant, "test-set captions = first", r["captions_equal_to_first"], "", ""])
    for name in ("anything", "densecap_eval"):
        r = report.get(name, {})
        if r.get("available"):
            rows.append(["", name, r.get("ms", 1000 * r.get("s", 0)), "", ""])
    print(tabulate(rows, headers=["variant", "work", "ms", "tokens/s", "peak RSS GB"]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", default="")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--encoder", default="", help="vit_b, vit_l or vit_h (default: config)")
    parser.add_argument("--lm", default="gpt2-large", choices=sorted(LM_SHAPES))
    parser.add_argument("--regions", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--beams", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["fp32"], choices=list(VARIANTS))
    parser.add_argument(
        "--train-variants", nargs="+", default=["fp32"], choices=list(TRAIN_VARIANTS)
    )
    parser.add_argument("--train-images", type=int, default=2)
    parser.add_argument("--train-regions", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument(
        "--dataset",
        default="",
        help="captions section: the configured model with MODEL.WEIGHTS on this test set",
    )
    parser.add_argument("--json", default="", help="write the report here")
    parser.add_argument("--profile", action="store_true", help="print an operator profile")
    parser.add_argument(
        "--sync-debug",
        action="store_true",
        help="CUDA: report where a training step and the largest inference wait for the GPU",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, one repeat: seconds")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE")
    args = parser.parse_args()
    if args.smoke:
        args.lm = "tiny-gpt2"
        args.regions, args.tokens, args.repeats = [1, 4], 4, 1
        args.train_regions = 3
        args.variants = ["fp32-eager", "fp32", "bf16-autocast", "bf16-frozen", "bf16-model"]
        args.train_variants = ["fp32", "fp32-ckpt"]

    torch.manual_seed(0)
    cfg = build_cfg(args)
    device = torch.device(args.device)
    report: dict = {"environment": environment(device), "settings": vars(args).copy()}
    report["inference"] = {}
    if {"encoder", "end_to_end", "anything"} & set(args.sections):
        model = build_sca(cfg, args.lm)
        first_captions = None
        for name in args.variants:
            set_inference_variant(model, VARIANTS[name], cfg)
            try:
                res = bench_inference(model, cfg, args, device, name)
            except Exception as e:  # e.g. a cache this LM does not support: report, go on
                report["inference"][name] = {"error": f"{type(e).__name__}: {e}"}
                continue
            largest = res.get("end_to_end", {}).get(f"{max(args.regions)}_regions_greedy")
            if largest is not None:
                captions = largest["captions"]
                first_captions = first_captions or captions
                same = sum(a == b for a, b in zip(captions, first_captions))
                res["captions_equal_to_first"] = round(same / len(captions), 4)
            report["inference"][name] = res
        if "anything" in args.sections:
            set_inference_variant(model, VARIANTS[args.variants[0]], cfg)
            report["anything"] = bench_anything(model, cfg, args, device)
        del model
    report["training"] = {}
    if "training" in args.sections:
        for name in args.train_variants:
            try:
                report["training"][name] = bench_training(cfg, args, device, name)
            except Exception as e:
                report["training"][name] = {"available": False, "error": f"{type(e).__name__}: {e}"}
    if "densecap_eval" in args.sections:
        report["densecap_eval"] = bench_densecap(args)
    if "captions" in args.sections:
        if args.dataset and cfg.MODEL.WEIGHTS:
            report["captions"] = bench_captions(cfg, args, device)
        else:
            report["captions"] = {
                "available": False,
                "reason": "needs --dataset and MODEL.WEIGHTS (a trained model)",
            }
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
