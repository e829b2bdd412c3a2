"""Faster execution of segment_anything's two-way transformers, with their weights and math.

Both are opt-in switches applied to already-built ``TwoWayTransformer`` modules (SAM's mask
decoder and SCA's mixer). They change how attention is computed or what is kept for backward,
never parameters or state-dict keys, so checkpoints and SAM parity are unaffected.
"""

import torch
import torch.nn.functional as F
from segment_anything.modeling.transformer import Attention, TwoWayAttentionBlock
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


class CheckpointedTwoWayAttentionBlock(TwoWayAttentionBlock):
    """A two-way block that keeps only its inputs for backward and recomputes the rest
    (activation checkpointing); plain forward when no gradient is needed."""

    def forward(
        self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor
    ) -> tuple[Tensor, Tensor]:
        if not (self.training and torch.is_grad_enabled()):
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
    """Compute every segment_anything ``Attention`` inside ``module`` with SDPA."""
    return specialise(module, Attention, SDPAAttention)


def use_activation_checkpointing(module: nn.Module) -> int:
    """Checkpoint every two-way block inside ``module`` in training."""
    return specialise(module, TwoWayAttentionBlock, CheckpointedTwoWayAttentionBlock)
