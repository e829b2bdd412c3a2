"""Precision per component: storage dtypes of frozen parts, autocast at inference, and the casts
between components that let each run in its own dtype (a whole-model ``.to(torch.bfloat16)``
included)."""

import contextlib
import math

import torch
from segment_anything.modeling.prompt_encoder import PositionEmbeddingRandom
from torch import nn

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def parse_dtype(name: str, key: str) -> torch.dtype:
    """The torch dtype a config value names; ``key`` names the config field in the error."""
    if name not in DTYPES:
        raise ValueError(f"{key}={name!r}: expected one of {sorted(DTYPES)}")
    return DTYPES[name]


def module_dtype(module: nn.Module) -> torch.dtype:
    """The dtype of a module's first floating-point parameter (float32 when it has none)."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def store_frozen_as(module: nn.Module, name: str, key: str, trained: bool) -> nn.Module:
    """Cast a frozen module's weights to the configured dtype; trained parts must stay float32
    (their optimizer updates would be lost to rounding)."""
    dtype = parse_dtype(name, key)
    if dtype != torch.float32 and trained:
        raise ValueError(f"{key}={name!r}: this part is trained, so it must stay float32")
    return module.to(dtype)


def inference_autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for MODEL.SCA.INFERENCE_AUTOCAST ("" = off)."""
    if not precision:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=parse_dtype(precision, "MODEL.SCA.INFERENCE_AUTOCAST"))


class Float32PositionEmbedding(PositionEmbeddingRandom):
    """SAM's random-Fourier positional encoding evaluated in float32 whatever the module's
    storage dtype: coordinates and the sin/cos of angles up to tens of radians lose too much in
    16-bit formats. Callers cast the result to the dtype of the module that reads it."""

    def _pe_encoding(self, coords: torch.Tensor) -> torch.Tensor:
        coords = 2 * coords.float() - 1
        coords = 2 * math.pi * (coords @ self.positional_encoding_gaussian_matrix.float())
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)
