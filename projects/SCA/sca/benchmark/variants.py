"""The variants the benchmark compares on the same weights, and the switches that make a built
model run as one of them (what the config keys would have built)."""

from __future__ import annotations

import torch
from detectron2.config import CfgNode

from ..modeling.cuda_graph import CUDAGraphForward
from ..modeling.specialise import use_reference_attention, use_sdpa_attention

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
    """Make ``model`` run as ``variant`` (an entry of VARIANTS); what it leaves out is as
    ``base_cfg`` configures."""
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
