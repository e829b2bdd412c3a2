"""Faster execution of segment_anything's attention, with its weights and math.

Opt-in switches applied to already-built modules (SAM's image encoder, SAM's mask decoder and
SCA's mixer). They change how attention is computed, what is computed once instead of twice, or
what is kept for backward, never parameters or state-dict keys, so checkpoints and SAM parity are
unaffected.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from segment_anything.modeling import image_encoder
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.transformer import (
    Attention,
    TwoWayAttentionBlock,
    TwoWayTransformer,
)
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


class SDPAAttention(Attention):
    """segment_anything's ``Attention`` with the score, softmax and weighted sum fused in
    ``F.scaled_dot_product_attention`` (same projections and scale): one kernel instead of a
    score matrix, a softmax and two head copies per call."""

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        q = self._separate_heads(self.q_proj(q), self.num_heads)
        k = self._separate_heads(self.k_proj(k), self.num_heads)
        v = self._separate_heads(self.v_proj(v), self.num_heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(self._recombine_heads(out))


def relative_positions(size: int, rel_pos: Tensor) -> Tensor:
    """(size, size, C) embeddings of the offsets between query and key positions along one axis:
    segment_anything's ``get_rel_pos`` for equal query and key sizes, with the offsets indexed on
    the table's device (its CPU index makes every call wait for the GPU's queued work)."""
    if rel_pos.shape[0] != 2 * size - 1:  # a table of another size is interpolated first
        return image_encoder.get_rel_pos(size, size, rel_pos)
    coords = torch.arange(size, device=rel_pos.device)
    return rel_pos[coords[:, None] - coords[None, :] + size - 1]


class SDPARelPosAttention(image_encoder.Attention):
    """The ViT encoder's attention with SAM's decomposed relative positions inside SDPA.

    Without a gradient, the positions are SDPA's additive mask: the score matrix is then never
    written, re-read for the positions and written again by a separate softmax (30-50% less time
    per attention call on CPU). With one (a trained encoder), a mask that needs a gradient sends
    SDPA to its unfused path, so the positions go into the dot product instead: each query is
    extended by its scores for every key row and column, and each key by the one-hot codes of its
    row and column (``augmented_rel_pos_attention``)."""

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, heads, HW, head_dim)
        if not self.use_rel_pos:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
            return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))
        r_q = q.reshape(b * self.num_heads, h, w, -1)
        rh = relative_positions(h, self.rel_pos_h).to(q.dtype)
        rw = relative_positions(w, self.rel_pos_w).to(q.dtype)
        rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rh).reshape(b, self.num_heads, h * w, h)
        rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rw).reshape(b, self.num_heads, h * w, w)
        if rel_h.requires_grad:  # a gradient flows to the queries or the position tables
            out = augmented_rel_pos_attention(q * self.scale, k, v, rel_h, rel_w, (h, w))
        else:
            mask = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, self.num_heads, h * w, -1)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


def augmented_rel_pos_attention(
    q: Tensor, k: Tensor, v: Tensor, rel_h: Tensor, rel_w: Tensor, size: tuple[int, int]
) -> Tensor:
    """softmax(q k^T + rel_h[key row] + rel_w[key column]) v as one fused SDPA call without a mask.

    ``q`` (already scaled), ``k``, ``v``: (B, heads, HW, C); ``rel_h``: (B, heads, HW, H) each
    query's score for every key row, ``rel_w`` (B, heads, HW, W) for every key column. Appending
    them to the query, and the one-hot codes of each key's row and column to the key, makes the dot
    product q k^T + rel_h + rel_w. ``v`` is zero-padded to the same width (the fused kernels want
    one head size) and the padding cut from the output."""
    h, w = size
    rows = torch.eye(h, dtype=k.dtype, device=k.device)[:, None, :].expand(h, w, h)
    cols = torch.eye(w, dtype=k.dtype, device=k.device)[None, :, :].expand(h, w, w)
    codes = torch.cat([rows, cols], dim=-1).reshape(1, 1, h * w, h + w)
    q_aug = torch.cat([q, rel_h, rel_w], dim=-1)
    k_aug = torch.cat([k, codes.expand(*k.shape[:2], -1, -1)], dim=-1)
    v_aug = F.pad(v, (0, h + w))
    out = F.scaled_dot_product_attention(q_aug, k_aug, v_aug, scale=1.0)
    return out[..., : v.shape[-1]]


class FastTwoWayAttentionBlock(TwoWayAttentionBlock):
    """segment_anything's two-way block with the positional encoding added to the image tokens
    once instead of twice: the image tokens do not change between the token-to-image and the
    image-to-token attention, so both read the same sum. Same operations otherwise."""

    def forward(
        self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor
    ) -> tuple[Tensor, Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q=q, k=q, v=queries)
        queries = self.norm1(queries)
        keys_pe = keys + key_pe
        q = queries + query_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q=q, k=keys_pe, v=keys))
        queries = self.norm3(queries + self.mlp(queries))
        q = queries + query_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(q=keys_pe, k=q, v=queries))
        return queries, keys


class FastTwoWayTransformer(TwoWayTransformer):
    """segment_anything's two-way transformer given its image tokens and their positional
    encoding stored token-major (channels last). Its (B, HW, C) view of them is then contiguous,
    instead of a transposed view of (B, C, H, W) through which every block's element-wise sums
    stride across memory (several times slower on CPU)."""

    def forward(
        self, image_embedding: Tensor, image_pe: Tensor, point_embedding: Tensor
    ) -> tuple[Tensor, Tensor]:
        channels_last = torch.channels_last  # no copy when already so
        return super().forward(
            image_embedding.contiguous(memory_format=channels_last),
            image_pe.contiguous(memory_format=channels_last),
            point_embedding,
        )


class FusedLayerNorm2d(LayerNorm2d):
    """segment_anything's channel LayerNorm of (B, C, H, W) maps as one ``F.layer_norm`` over
    the channels of each pixel (same statistics, same eps), instead of six element-wise passes:
    the mask decoder's upscaling runs it on every region's 64 x 128 x 128 map."""

    def forward(self, x: Tensor) -> Tensor:
        channels_last = x.permute(0, 2, 3, 1)
        out = F.layer_norm(channels_last, (x.shape[1],), self.weight, self.bias, self.eps)
        return out.permute(0, 3, 1, 2)


# set while a caller checkpoints a whole pass itself: its blocks then run plain (a block
# checkpoint inside would recompute them a second time)
_CALLER_CHECKPOINTS = ContextVar("sca_caller_checkpoints", default=False)


@contextmanager
def checkpointed_by_caller() -> Iterator[None]:
    """Run checkpointed two-way blocks plain inside: for a caller that checkpoints the whole
    pass around them (keeping only that pass's inputs, fewer tensors than one per block)."""
    token = _CALLER_CHECKPOINTS.set(True)
    try:
        yield
    finally:
        _CALLER_CHECKPOINTS.reset(token)


class CheckpointedTwoWayAttentionBlock(FastTwoWayAttentionBlock):
    """A two-way block that keeps only its inputs for backward and recomputes the rest
    (activation checkpointing); plain forward when no gradient is needed or when the caller
    checkpoints the whole pass (``checkpointed_by_caller``)."""

    def forward(
        self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor
    ) -> tuple[Tensor, Tensor]:
        if not (self.training and torch.is_grad_enabled()) or _CALLER_CHECKPOINTS.get():
            return super().forward(queries, keys, query_pe, key_pe)
        return checkpoint(super().forward, queries, keys, query_pe, key_pe, use_reentrant=False)


def specialise(module: nn.Module, base: type, subclass: type) -> int:
    """Re-class every exact ``base`` instance inside ``module`` as ``subclass``, which adds
    behaviour but no state. Returns how many were changed."""
    count = 0
    for m in module.modules():
        if type(m) is base:
            m.__class__ = subclass
            count += 1
    return count


def use_sdpa_attention(module: nn.Module) -> int:
    """Compute every segment_anything attention inside ``module`` (two-way transformers' and the
    ViT encoder's) with SDPA, two-way blocks without their repeated positional sum, two-way
    transformers on token-major image tokens, and channel LayerNorms as one fused call."""
    return (
        specialise(module, Attention, SDPAAttention)
        + specialise(module, image_encoder.Attention, SDPARelPosAttention)
        + specialise(module, TwoWayAttentionBlock, FastTwoWayAttentionBlock)
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
        + specialise(module, FastTwoWayTransformer, TwoWayTransformer)
        + specialise(module, FusedLayerNorm2d, LayerNorm2d)
    )


def use_activation_checkpointing(module: nn.Module) -> int:
    """Checkpoint every two-way block inside ``module`` in training."""
    return specialise(module, TwoWayAttentionBlock, CheckpointedTwoWayAttentionBlock) + specialise(
        module, FastTwoWayAttentionBlock, CheckpointedTwoWayAttentionBlock
    )
