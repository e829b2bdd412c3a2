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


# Attention between SAM's few prompt tokens (T ~ 15) and its many image tokens (N = 4,096 per
# region), folded so that the image tokens are never projected: a head's score is
# (W_q x + b_q) . (W_k y + b_k) / sqrt(d), linear in the image token on either side, so the
# projection on the image side folds into the prompt side's rows (T x d per head). Stacking
# those rows block-diagonally over the heads ((heads * T) rows, about as many as the projections'
# channels) makes every head's scores one batched product with the image tokens, and the values
# another. No projected copy of the image tokens, no head copies, no SDPA call (whose CPU kernel
# handles ~15 keys poorly). Same math as segment_anything's ``Attention``; the products are
# written token-major so that the image tokens' gradients come out as the tokens are stored.


def _block_rows(x: Tensor, heads: int) -> Tensor:
    """(B, T, C) -> (B, heads * T, C): row (h, j) is x_j's channels of head h, zeros elsewhere."""
    b, t, c = x.shape
    eye = torch.eye(heads, dtype=x.dtype, device=x.device)
    rows = torch.einsum("bthd,hg->bgthd", x.reshape(b, t, heads, c // heads), eye)
    return rows.reshape(b, heads * t, c)


def _folded_scores(rows: Tensor, proj: nn.Linear, image: Tensor) -> Tensor:
    """(B, N, heads * T) scores ``rows . proj(image)`` for block rows (B, heads * T, C_internal)
    and image tokens (B, N, C), with ``proj`` folded into the rows."""
    return torch.baddbmm((rows @ proj.bias)[:, None], image, (rows @ proj.weight).transpose(1, 2))


def token_to_image_attention(attn: Attention, q: Tensor, keys_pe: Tensor, keys: Tensor) -> Tensor:
    """``attn(q=q, k=keys_pe, v=keys)``: the prompt tokens ``q`` (B, T, C) attend to the image
    tokens (B, N, C)."""
    b, t, _ = q.shape
    heads, d = attn.num_heads, attn.internal_dim // attn.num_heads
    rows = _block_rows(attn.q_proj(q) * d**-0.5, heads)
    probs = _folded_scores(rows, attn.k_proj, keys_pe).softmax(dim=1)  # over the image tokens
    mixed = torch.bmm(probs.transpose(1, 2), keys)  # (B, heads * T, C) attended image tokens
    # v_proj after the weighted sum (the weights sum to 1, so its bias passes through); row
    # block h keeps head h's channels
    values = (mixed @ attn.v_proj.weight.t()).view(b, heads, t, heads, d)
    values = values.diagonal(dim1=1, dim2=3).permute(0, 1, 3, 2).reshape(b, t, -1)
    return attn.out_proj(values + attn.v_proj.bias)


def image_to_token_attention(
    attn: Attention, keys: Tensor, keys_pe: Tensor, token_k: Tensor, token_v: Tensor
) -> Tensor:
    """``keys + attn(q=keys_pe, k=..., v=...)``: the image tokens (B, N, C) attend to the prompt
    tokens, given their projected keys and values ``token_k``, ``token_v`` (B, T, C_internal)."""
    b, t, _ = token_k.shape
    heads, d = attn.num_heads, attn.internal_dim // attn.num_heads
    scores = _folded_scores(_block_rows(token_k * d**-0.5, heads), attn.q_proj, keys_pe)
    # the softmax over each head's T prompt tokens, on a middle axis (contiguous across N)
    probs = scores.transpose(1, 2).reshape(b, heads, t, -1).softmax(dim=2)
    probs = probs.view(b, heads * t, -1)
    # out_proj folded into the value rows; an image token's weights sum to 1 in each head, so
    # the bias enters as bias / heads on every row
    out_rows = _block_rows(token_v, heads) @ attn.out_proj.weight.t() + attn.out_proj.bias / heads
    return torch.baddbmm(keys, probs.transpose(1, 2), out_rows)


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
            out = masked_rel_pos_attention(q, k, v, rel_h, rel_w, self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


def masked_rel_pos_attention(
    q: Tensor, k: Tensor, v: Tensor, rel_h: Tensor, rel_w: Tensor, scale: float
) -> Tensor:
    """softmax(scale q k^T + rel_h[key row] + rel_w[key column]) v with the positions as SDPA's
    additive mask, for a group of (image, head) pairs at a time: the whole mask of a
    global-attention block is (B, heads, HW, HW), 1.6 GB for two images in ViT-B and 4.3 GB for
    one in ViT-H, the peak memory of a CPU training step with a frozen encoder. A group's mask
    holds at most ``MASK_GROUP_ELEMENTS`` (at least one head); each head is computed exactly as
    in one call, and reads its keys and values once (bands of queries would re-read them)."""
    b, heads, n, d = q.shape
    limit = MASK_GROUP_ELEMENTS.get(q.device.type)
    per_call = b * heads if limit is None else max(1, limit // (n * n))
    if per_call >= b * heads:
        mask = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, heads, n, n)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    q, k, v = (x.reshape(b * heads, 1, n, d) for x in (q, k, v))
    rel_h, rel_w = (x.flatten(0, 1)[:, None] for x in (rel_h, rel_w))
    outs = []
    for group in range(0, b * heads, per_call):
        part = slice(group, group + per_call)
        mask = (rel_h[part, ..., :, None] + rel_w[part, ..., None, :]).reshape(-1, 1, n, n)
        out = F.scaled_dot_product_attention(q[part], k[part], v[part], attn_mask=mask, scale=scale)
        outs.append(out)
    return torch.cat(outs).reshape(b, heads, n, d)


# A group's mask elements per device type: on CPU 1 << 26 (256 MB in float32: 4 heads of SAM's
# 64 x 64 image tokens). Elsewhere one call per block: a GPU training step is bound by kernel
# launches, and ViT-H's two images would take 8 calls per global block (their mask: 1 GB in fp16).
MASK_GROUP_ELEMENTS = {"cpu": 1 << 26}


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
        queries = self.norm2(queries + self._token_to_image(q, keys_pe, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q = queries + query_pe
        keys = self.norm4(self._image_to_token(keys, keys_pe, q, queries))
        return queries, keys

    def _token_to_image(self, q: Tensor, keys_pe: Tensor, keys: Tensor) -> Tensor:
        return self.cross_attn_token_to_image(q=q, k=keys_pe, v=keys)

    def _image_to_token(self, keys: Tensor, keys_pe: Tensor, q: Tensor, queries: Tensor) -> Tensor:
        """The image tokens plus their attention to the prompt tokens (before ``norm4``)."""
        return keys + self.cross_attn_image_to_token(q=keys_pe, k=q, v=queries)


class FoldedTwoWayAttentionBlock(FastTwoWayAttentionBlock):
    """The fast two-way block with both cross attentions folded into the prompt side
    (``token_to_image_attention``, ``image_to_token_attention``): SCA's mixer, 12 such blocks
    per region, trains ~15% and infers ~25% faster on CPU. Same math, not the same rounding, so
    SAM's own decoder keeps the unfolded block (its masks stay bit-equal to SAM's). With
    segment_anything's attention modules (activation checkpointing without ``SDPA_ATTENTION``)
    it is the fast block, and so it is in inference on CUDA: there SDPA's fused kernels were
    faster (H200, paper shapes, 64 regions end to end in one process: 198 vs 261 ms and 187 vs
    233 ms), while training with the fold (mixer compiled) met its target (170-199 ms a step)."""

    def _folds(self, keys: Tensor) -> bool:
        sdpa = isinstance(self.cross_attn_image_to_token, SDPAAttention)
        return sdpa and (not keys.is_cuda or torch.is_grad_enabled())

    def _token_to_image(self, q: Tensor, keys_pe: Tensor, keys: Tensor) -> Tensor:
        if not self._folds(keys):
            return super()._token_to_image(q, keys_pe, keys)
        return token_to_image_attention(self.cross_attn_token_to_image, q, keys_pe, keys)

    def _image_to_token(self, keys: Tensor, keys_pe: Tensor, q: Tensor, queries: Tensor) -> Tensor:
        if not self._folds(keys):
            return super()._image_to_token(keys, keys_pe, q, queries)
        attn = self.cross_attn_image_to_token
        token_k, token_v = attn.k_proj(q), attn.v_proj(queries)
        return image_to_token_attention(attn, keys, keys_pe, token_k, token_v)


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


class CheckpointedTwoWayAttentionBlock(FoldedTwoWayAttentionBlock):
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
