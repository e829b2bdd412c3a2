"""Opt-in switches that re-class already-built segment_anything modules (SAM's image encoder,
SAM's mask decoder and SCA's mixer) as faster subclasses.

They change how attention is computed, what is computed once instead of twice, or what is kept
for backward, never parameters or state-dict keys, so checkpoints and SAM parity are unaffected.
"""

from segment_anything.modeling import image_encoder
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.transformer import (
    Attention,
    TwoWayAttentionBlock,
    TwoWayTransformer,
)
from torch import nn

from .fused_layer_norm import FusedLayerNorm2d
from .rel_pos_attention import SDPARelPosAttention
from .two_way_blocks import (
    CheckpointedTwoWayAttentionBlock,
    FastTwoWayAttentionBlock,
    FastTwoWayTransformer,
    FoldedTwoWayAttentionBlock,
    SDPAAttention,
)


def specialise(module: nn.Module, base: type, subclass: type) -> int:
    """Re-class every exact ``base`` instance inside ``module`` as ``subclass``, which adds
    behaviour but no state. Returns how many were changed."""
    count = 0
    for m in module.modules():
        if type(m) is base:
            m.__class__ = subclass
            count += 1
    return count


def use_sdpa_attention(module: nn.Module, fold: bool = False) -> int:
    """Compute every segment_anything attention inside ``module`` (two-way transformers' and the
    ViT encoder's) with SDPA, two-way blocks without their repeated positional sum, two-way
    transformers on token-major image tokens, and channel LayerNorms as one fused call. With
    ``fold`` (SCA's mixer), two-way blocks fold their cross attentions into the prompt side."""
    block = FoldedTwoWayAttentionBlock if fold else FastTwoWayAttentionBlock
    return (
        specialise(module, Attention, SDPAAttention)
        + specialise(module, image_encoder.Attention, SDPARelPosAttention)
        + specialise(module, TwoWayAttentionBlock, block)
        + (specialise(module, FastTwoWayAttentionBlock, block) if fold else 0)
        + specialise(module, TwoWayTransformer, FastTwoWayTransformer)
        + specialise(module, LayerNorm2d, FusedLayerNorm2d)
    )


def use_reference_attention(module: nn.Module) -> int:
    """Undo ``use_sdpa_attention``: segment_anything's own attention and blocks (benchmarks and
    parity checks compare the two on the same weights)."""
    return (
        specialise(module, SDPAAttention, Attention)
        + specialise(module, SDPARelPosAttention, image_encoder.Attention)
        + specialise(module, FastTwoWayAttentionBlock, TwoWayAttentionBlock)
        + specialise(module, FoldedTwoWayAttentionBlock, TwoWayAttentionBlock)
        + specialise(module, FastTwoWayTransformer, TwoWayTransformer)
        + specialise(module, FusedLayerNorm2d, LayerNorm2d)
    )


def use_activation_checkpointing(module: nn.Module) -> int:
    """Checkpoint every two-way block inside ``module`` in training."""
    return sum(
        specialise(module, block, CheckpointedTwoWayAttentionBlock)
        for block in (TwoWayAttentionBlock, FastTwoWayAttentionBlock, FoldedTwoWayAttentionBlock)
    )
