"""segment_anything's two-way attention blocks and transformer, computed faster with the same
weights and math: SDPA attention, the positional sum added once, folded cross attention in SCA's
mixer, token-major image tokens, and activation checkpointing."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from segment_anything.modeling.transformer import (
    Attention,
    TwoWayAttentionBlock,
    TwoWayTransformer,
)
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .folded_attention import image_to_token_attention, token_to_image_attention


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
