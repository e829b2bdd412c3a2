"""Cross attention between SAM's prompt tokens and image tokens, folded into the prompt side.

Attention between SAM's few prompt tokens (T ~ 15) and its many image tokens (N = 4,096 per
region), folded so that the image tokens are never projected: a head's score is
(W_q x + b_q) . (W_k y + b_k) / sqrt(d), linear in the image token on either side, so the
projection on the image side folds into the prompt side's rows (T x d per head). Stacking those
rows block-diagonally over the heads ((heads * T) rows, about as many as the projections'
channels) makes every head's scores one batched product with the image tokens, and the values
another. No projected copy of the image tokens, no head copies, no SDPA call (whose CPU kernel
handles ~15 keys poorly). Same math as segment_anything's ``Attention``; the products are
written token-major so that the image tokens' gradients come out as the tokens are stored.
"""

import torch
from segment_anything.modeling.transformer import Attention
from torch import Tensor, nn


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
